//! The kubectl plugin (`kubectl changegate ...`). Its commands (approve,
//! reject, review, status, schedule, why, report) are not built yet; until
//! they are, it says so and points at what works today.

use std::process::ExitCode;

fn main() -> ExitCode {
    let command = std::env::args().nth(1).unwrap_or_default();
    if command == "--version" || command == "version" {
        println!("kubectl-changegate {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "kubectl changegate: this version has no commands yet.\n\
         To approve or reject a change today, add a decision through the status subresource\n\
         (the first decision creates the list; later ones append with a JSON patch to /status/approvals/-):\n  \
         kubectl patch chg <name> -n <namespace> --subresource=status --type=merge \\\n    \
         -p '{{\"status\":{{\"approvals\":[{{\"decision\":\"Approved\",\"comment\":\"...\"}}]}}}}'\n\
         (the README has the details)."
    );
    ExitCode::from(2)
}
