//! The API, end to end in process, on SQLite and on PostgreSQL: every
//! scenario runs once per database (`<scenario>::sqlite`, `<scenario>::postgres`).

mod acceptance;
mod access;
mod bad_input;
mod bootstrap;
mod bundle;
mod calendar;
mod changes;
mod clock;
mod concurrency;
mod email;
mod evidence;
mod gate;
mod integrity;
mod matrix;
mod openapi;
mod outage;
mod policy;
mod portal;
mod proposals;
mod releases;
mod resources;
mod scheduler;
mod session;

/// Run an async scenario `fn(TestApp)` on both databases.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(changegate_testkit::TestApp::sqlite().await).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(changegate_testkit::TestApp::postgres().await).await
                }
            }
        )+
    };
}
