//! End-to-end test support (processes, ports, temporary data dirs) arrives with the node issue.
