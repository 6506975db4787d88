//! `sluice import litellm CONFIG [-o FILE]`: turns another gateway's config into a Sluice
//! config. The conversion is in [`litellm`]; this module reads the file, writes the YAML
//! (to `-o FILE` or stdout), prints every setting not imported as written on stderr with its
//! key path, and checks the result as `sluice check` would.

pub mod litellm;
pub mod providers;

use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// `sluice import …`.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Convert a LiteLLM proxy `config.yaml` (model_list, router_settings, litellm_settings,
    /// general_settings) into a Sluice config; settings that cannot be mapped are listed on
    /// stderr with their key paths.
    Litellm(LitellmArgs),
}

/// Arguments of `sluice import litellm`.
#[derive(Debug, Args)]
pub struct LitellmArgs {
    /// The LiteLLM config file.
    pub config: PathBuf,
    /// Where to write the Sluice config (default: stdout).
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
}

/// Runs an import. Exit code 0 when the config was written (settings left out are listed on
/// stderr), 2 when the input cannot be read or parsed, or the output does not pass the checks
/// of `sluice check`, 1 when the output cannot be written.
pub fn run(c: ImportCommand) -> ExitCode {
    match c {
        ImportCommand::Litellm(a) => litellm_command(a),
    }
}

fn litellm_command(a: LitellmArgs) -> ExitCode {
    let source = a.config.display().to_string();
    let text = match std::fs::read_to_string(&a.config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {source}: cannot read: {e}");
            return ExitCode::from(2);
        }
    };
    let yaml = match import_litellm(&source, &text) {
        Ok((yaml, notes)) => {
            print_notes(&notes);
            yaml
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match &a.output {
        Some(path) => {
            if let Err(e) = std::fs::write(path, &yaml) {
                eprintln!("error: cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            eprintln!(
                "wrote {} (check it with: sluice check --config {0})",
                path.display()
            );
        }
        None => print!("{yaml}"),
    }
    ExitCode::SUCCESS
}

/// Converts LiteLLM config text into Sluice config text (with a header naming `source` and
/// listing the notes as comments) and the notes. The output is checked as `sluice check`
/// would, with every `${VAR}` standing for a placeholder value.
///
/// Errors: the input is not YAML; the output fails Sluice's validation (a bug in the importer,
/// reported with the failing key path).
pub fn import_litellm(source: &str, text: &str) -> Result<(String, Vec<litellm::Note>), String> {
    let input: serde_json::Value = if text.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_saphyr::from_str(text).map_err(|e| {
            let first = e.to_string();
            format!("{source}: not YAML: {}", first.lines().next().unwrap_or(""))
        })?
    };
    let imported = litellm::convert(&input);
    let body =
        serde_saphyr::to_string(&imported.config).map_err(|e| format!("cannot write YAML: {e}"))?;
    let yaml = format!("{}{body}", header(source, &imported.notes));
    // Placeholders valid as a URL and as a key, so every check but the environment runs.
    crate::config::parse_with_env("imported config", &yaml, |_| {
        Some("http://variable.invalid".to_string())
    })
    .map_err(|e| format!("the imported config does not pass `sluice check`: {e}"))?;
    Ok((yaml, imported.notes))
}

/// The comment block at the top of the written file.
fn header(source: &str, notes: &[litellm::Note]) -> String {
    let mut h = format!(
        "# Sluice config imported from the LiteLLM config {source} by `sluice import litellm`.\n\
         # Sluice listens on 127.0.0.1:4000 unless server.listen says otherwise (LiteLLM: 0.0.0.0:4000).\n"
    );
    if !notes.is_empty() {
        h.push_str(&format!(
            "# {} setting(s) not imported as written:\n",
            notes.len()
        ));
        for n in notes {
            h.push_str(&format!(
                "#   {}: {}\n",
                n.path,
                n.message.replace('\n', " ")
            ));
        }
    }
    h
}

fn print_notes(notes: &[litellm::Note]) {
    if notes.is_empty() {
        eprintln!("every setting was imported");
        return;
    }
    eprintln!("{} setting(s) not imported as written:", notes.len());
    for n in notes {
        eprintln!("  {}: {}", n.path, n.message);
    }
}
