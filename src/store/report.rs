//! Output of the log commands: tables, JSON lines, CSV.
