//! Test support for changegate: fresh stores on SQLite or on a private
//! PostgreSQL (`db`), the PostgreSQL server behind them (`postgres`), a
//! `TestApp` over the real router with a pinned clock and token-carrying
//! actors (`app`), and the MSP of the tests (`msp`).

pub mod app;
pub mod db;
pub mod msp;
pub mod postgres;
pub mod smtp;

pub use app::{Actor, Resp, TestApp, start_of_tests};
