//! Stand-ins for the `cbc` program (shell scripts) for the tests of this module and of the
//! placer: each ends a run one way, so that every way is exercised without timing anything.

use std::process::Command;

use super::TempDir;

/// A status line and one column, as CBC writes them.
const ANSWER: &str = "Stopped on ctrl-c - objective value 1\\n      0 x0  1  0\\n";

/// Writes the stand-ins into a directory of their own:
/// - `deaf` ignores the interrupt (as CBC does before branch and bound) and, should it live to
///   its end a minute later, writes an optimal answer: a run that is not killed shows;
/// - `answers` writes an incumbent when interrupted, as CBC's branch and bound does;
/// - `repeats-start` answers the interrupt with the starting solution it was given;
/// - `quits` exits 0 when interrupted, writing nothing;
/// - `silent` exits 0 at once, `crashes` exits 139 saying so, `no-exec` may not be run;
/// - `wrapper` runs `grandchild` (which ignores the interrupt) without `exec`, as a wrapper
///   script around CBC would, and `wraps-answers` runs `answers` so; `leaves-child` starts
///   `grandchild` in the background and exits.
///
/// The wrappers and the grandchild write their pids into the directory (`wrapper.pid`,
/// `grandchild.pid`).
pub(in crate::control::ilp) fn scripts() -> TempDir {
    let dir = TempDir::new().unwrap();
    let here = dir.path().display().to_string();
    let write = |name: &str, body: &str, mode: &str| {
        // Written by a child process, never opened for writing in this one: a test thread
        // that forks while a script is open for writing here would keep it open until its
        // child's exec, and running the script then fails with "text file busy".
        let path = dir.file(name);
        let status = Command::new("/bin/sh")
            .args(["-c", "printf '%s' \"$2\" > \"$0\" && chmod \"$1\" \"$0\""])
            .arg(&path)
            .arg(mode)
            .arg(format!("#!/bin/sh\n{body}\n"))
            .status()
            .unwrap();
        assert!(status.success(), "writing {}", path.display());
    };
    let answer_on_interrupt = |what: &str| {
        format!("trap '{what} > solution.sol; exit 0' INT\nwhile :; do sleep 0.01; done")
    };
    write(
        "deaf",
        &format!(
            "trap '' INT\nsleep 60\nprintf '{}' > solution.sol",
            ANSWER.replace("Stopped on ctrl-c", "Optimal")
        ),
        "755",
    );
    write(
        "answers",
        &answer_on_interrupt(&format!("printf \"{ANSWER}\"")),
        "755",
    );
    write(
        "repeats-start",
        &answer_on_interrupt(
            "{ echo \"Stopped on ctrl-c - objective value 0\"; \
             while read i name value; do echo \"$i $name $value 0\"; done < start.sol; }",
        ),
        "755",
    );
    write(
        "quits",
        "trap 'exit 0' INT\nwhile :; do sleep 0.01; done",
        "755",
    );
    write("silent", "exit 0", "755");
    write("crashes", "echo 'Segmentation fault' >&2\nexit 139", "755");
    write("no-exec", "exit 0", "644");
    write(
        "grandchild",
        &format!("trap '' INT\necho $$ > {here}/grandchild.pid\nexec sleep 60"),
        "755",
    );
    write(
        "wrapper",
        &format!("echo $$ > {here}/wrapper.pid\n{here}/grandchild \"$@\""),
        "755",
    );
    write("wraps-answers", &format!("{here}/answers \"$@\""), "755");
    write(
        "leaves-child",
        &format!(
            "echo $$ > {here}/wrapper.pid\n{here}/grandchild &\n\
             while [ ! -s {here}/grandchild.pid ]; do sleep 0.01; done\nexit 0"
        ),
        "755",
    );
    dir
}
