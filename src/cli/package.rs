//! `rackboot package-files DIR` (hidden): what the Debian package ships
//! besides the binary, made from the command line's own definition so they
//! never drift from it: a man page for rackboot and one per subcommand
//! (`DIR/man/rackboot-serve.1`, ...), and bash, zsh and fish completions
//! (`DIR/completions/`).

use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

/// Writes the man pages and completions under `dir`.
pub(crate) fn run(dir: &Path) -> ExitCode {
    match write(dir) {
        Ok(n) => {
            println!("wrote {n} files under {}", dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rackboot package-files: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write(dir: &Path) -> Result<usize, String> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    for d in [&man, &completions] {
        std::fs::create_dir_all(d).map_err(|e| format!("cannot make {}: {e}", d.display()))?;
    }
    let mut cmd = super::Args::command().name("rackboot").bin_name("rackboot");
    cmd.build();
    let mut pages = vec![("rackboot".to_owned(), cmd.clone())];
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let name = format!("rackboot-{}", sub.get_name());
        pages.push((
            name.clone(),
            sub.clone()
                .name(name.clone())
                .bin_name(name.replace('-', " ")),
        ));
    }
    let mut n = 0;
    for (name, page) in pages {
        let path = man.join(format!("{name}.1"));
        let mut out = Vec::new();
        clap_mangen::Man::new(page)
            .render(&mut out)
            .map_err(|e| format!("cannot render {name}.1: {e}"))?;
        std::fs::write(&path, out).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        n += 1;
    }
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd, "rackboot", &completions)
            .map_err(|e| format!("cannot write the {shell} completions: {e}"))?;
        n += 1;
    }
    Ok(n)
}
