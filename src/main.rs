use clap::Parser;

use gpt2_tui::cli::Cli;
use gpt2_tui::Error;

fn main() {
    let cli = Cli::parse();
    let code = match gpt2_tui::cmd::run(cli) {
        Ok(()) => 0,
        // The reader closed the pipe early: that is how `| head` ends a run, not an error.
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("gpt2-tui: error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
