//! The application layer: the rules every entry point shares, each kept
//! in one place. The API's handlers, the portal's pages, e-mail links, the
//! gate and the agent's reports call it; it never calls them (no module
//! here imports `crate::api` or `crate::portal`, which a test checks).
//!
//! - `bootstrap`: the first administrator and clusters a server is
//!   started with (the Helm chart's generated Secret);
//! - `change`: moving a change between states and saving it with its events;
//! - `assess`: risk, routing and frozen approvers, and a standard change's
//!   bounds, for submission, every material edit and the form's preview;
//! - `submit`: submission and revision;
//! - `decide`: recording a decision, through every channel;
//! - `accept`: the client's acceptance of a tested change, where the
//!   policy asks for it, and what it holds back until given;
//! - `proposal`: change proposals, authorized by the boards the policy
//!   names before their changes are raised (each still approved on its own);
//! - `implement`: starting a change (by a person, a pipeline's record, the
//!   agent's report or a release) and what may start it;
//! - `release`: what deploying and finishing a release do to its changes.

pub mod accept;
pub mod assess;
pub mod bootstrap;
pub mod change;
pub mod decide;
pub mod implement;
pub mod proposal;
pub mod release;
pub mod resource;
pub mod submit;
pub mod window;

#[cfg(test)]
mod tests {
    /// The layer stands below the handlers: none of its files names them.
    #[test]
    fn no_module_of_the_application_layer_imports_a_handler() {
        let dir = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/src/app"));
        let mut read = 0;
        let mut folders = vec![dir];
        let mut files = Vec::new();
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).expect("an app folder") {
                let path = entry.expect("an entry").path();
                if path.is_dir() {
                    folders.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        for path in files {
            let text = std::fs::read_to_string(&path).expect("a source file");
            // Spelt apart, so this file does not name them itself.
            for handler in ["api", "portal"].map(|m| format!("crate::{m}::")) {
                let code: String = text
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .collect::<Vec<_>>()
                    .join("\n");
                assert!(
                    !code.contains(&handler),
                    "{} imports {handler}",
                    path.display()
                );
            }
            read += 1;
        }
        assert!(read >= 12, "read {read} files");
    }
}
