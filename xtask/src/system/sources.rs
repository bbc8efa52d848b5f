//! apt's package sources as apt reads them (sources.list(5)), as far as the installer needs
//! them: which suites an enabled source of binary packages serves, from which URI, with which
//! signing key.
//!
//! Two formats, told apart by the file's name as apt tells them:
//! - one-line (`sources.list`, `*.list`): `deb [options] URI SUITE COMPONENT...`, where `#`
//!   starts a comment anywhere on a line;
//! - deb822 (`*.sources`): stanzas of `Field: value` lines separated by blank lines, field names
//!   in any case, values continued on lines that start with a space or tab, lines starting with
//!   `#` comments, and `Enabled: no` turning a stanza off.
//!
//! Only `deb` sources count (a `deb-src` line serves no binary package), and a disabled or
//! commented-out source serves nothing.

use std::path::Path;

/// One enabled source of binary packages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// Its URIs (a one-line entry has one).
    pub uris: Vec<String>,
    /// The suites it serves.
    pub suites: Vec<String>,
    /// Its `Signed-By`: a keyring file or fingerprints, or (deb822) an inline key whose
    /// continuation lines are kept as written.
    pub signed_by: Option<String>,
}

impl Source {
    /// Whether it serves `suite`.
    pub fn serves(&self, suite: &str) -> bool {
        self.suites.iter().any(|s| s == suite)
    }
}

/// The format of a source file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `sources.list` and `*.list`.
    OneLine,
    /// `*.sources`.
    Deb822,
}

impl Format {
    /// The format apt reads `path` in, or `None` for a file apt ignores.
    pub fn of(path: &Path) -> Option<Format> {
        if path.file_name().is_some_and(|name| name == "sources.list") {
            return Some(Format::OneLine);
        }
        match path.extension()?.to_str()? {
            "list" => Some(Format::OneLine),
            "sources" => Some(Format::Deb822),
            _ => None,
        }
    }
}

/// The enabled `deb` sources in `text`.
pub fn parse(text: &str, format: Format) -> Vec<Source> {
    match format {
        Format::OneLine => text.lines().filter_map(one_line).collect(),
        Format::Deb822 => stanzas(text).iter().filter_map(|s| deb822(s)).collect(),
    }
}

/// A one-line entry, if `line` is an enabled `deb` one.
fn one_line(line: &str) -> Option<Source> {
    let line = line.split_once('#').map_or(line, |(entry, _comment)| entry);
    let mut words = line.split_whitespace();
    if words.next()? != "deb" {
        return None;
    }
    let mut word = words.next()?;
    let mut signed_by = None;
    if let Some(first) = word.strip_prefix('[') {
        // Options, up to the word that closes the bracket: `[ arch=amd64 signed-by=FILE ]`.
        let mut option = first;
        loop {
            let (text, closed) = match option.strip_suffix(']') {
                Some(text) => (text, true),
                None => (option, false),
            };
            if let Some((key, value)) = text.split_once('=') {
                if key
                    .trim_end_matches(['+', '-'])
                    .eq_ignore_ascii_case("signed-by")
                {
                    signed_by = Some(value.to_owned());
                }
            }
            if closed {
                break;
            }
            option = words.next()?;
        }
        word = words.next()?;
    }
    let suite = words.next()?;
    Some(Source {
        uris: vec![word.to_owned()],
        suites: vec![suite.to_owned()],
        signed_by,
    })
}

/// The stanzas of a deb822 file, comment lines left out: each a list of fields, each a name
/// and its value lines (the first, then continuation lines as written).
fn stanzas(text: &str) -> Vec<Vec<(String, Vec<&str>)>> {
    let mut stanzas = Vec::new();
    let mut fields: Vec<(String, Vec<&str>)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !fields.is_empty() {
                stanzas.push(std::mem::take(&mut fields));
            }
        } else if line.starts_with('#') {
            continue;
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_ascii_lowercase(), vec![value.trim()]));
        }
    }
    if !fields.is_empty() {
        stanzas.push(fields);
    }
    stanzas
}

/// A deb822 stanza's source, if it is an enabled `deb` one.
fn deb822(stanza: &[(String, Vec<&str>)]) -> Option<Source> {
    let field = |name: &str| {
        stanza
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, lines)| lines)
    };
    let words = |name: &str| -> Vec<String> {
        field(name)
            .into_iter()
            .flatten()
            .flat_map(|line| line.split_whitespace())
            .map(str::to_owned)
            .collect()
    };
    if field("enabled").is_some_and(|value| !is_true(value.concat().trim())) {
        return None;
    }
    if !words("types").iter().any(|t| t == "deb") {
        return None;
    }
    Some(Source {
        uris: words("uris"),
        suites: words("suites"),
        signed_by: field("signed-by")
            .map(|lines| lines.join("\n"))
            .filter(|value| !value.trim().is_empty()),
    })
}

/// apt's reading of a boolean field (`no`, `false`, `off`, `without`, `disable` and `0` are
/// false; anything else it accepts is true).
fn is_true(value: &str) -> bool {
    !["no", "false", "off", "without", "disable", "0"]
        .iter()
        .any(|no| value.eq_ignore_ascii_case(no))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serves(text: &str, format: Format, suite: &str) -> bool {
        parse(text, format)
            .iter()
            .any(|source| source.serves(suite))
    }

    #[test]
    fn one_line_comments_and_source_entries_serve_nothing() {
        let text = "# deb http://mirror.example/debian bookworm-backports main\n\
                    #deb http://mirror.example/debian bookworm-backports main\n\
                    deb http://mirror.example/debian bookworm main # bookworm-backports too?\n\
                    deb-src http://mirror.example/debian bookworm-backports main\n\
                    \n";
        assert!(serves(text, Format::OneLine, "bookworm"));
        assert!(!serves(text, Format::OneLine, "bookworm-backports"));
        let enabled = "deb http://mirror.example/debian bookworm-backports main contrib\n";
        assert!(serves(enabled, Format::OneLine, "bookworm-backports"));
    }

    #[test]
    fn one_line_options_give_the_key_and_do_not_shift_the_fields() {
        for options in [
            "[arch=amd64 signed-by=/usr/share/keyrings/k.gpg]",
            "[ arch=amd64 signed-by=/usr/share/keyrings/k.gpg ]",
            "[signed-by=/usr/share/keyrings/k.gpg]",
        ] {
            let text = format!("deb {options} http://mirror.example/debian bookworm main\n");
            assert_eq!(
                parse(&text, Format::OneLine),
                [Source {
                    uris: vec!["http://mirror.example/debian".into()],
                    suites: vec!["bookworm".into()],
                    signed_by: Some("/usr/share/keyrings/k.gpg".into()),
                }],
                "{options}"
            );
        }
        assert!(parse("deb [arch=amd64\n", Format::OneLine).is_empty());
        assert!(parse("deb http://mirror.example/debian\n", Format::OneLine).is_empty());
    }

    #[test]
    fn deb822_disabled_stanzas_comments_and_source_types_serve_nothing() {
        let text = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm-backports\n\
                    Components: main\nEnabled: no\n\
                    \n\
                    types: deb\nuris: http://mirror.example/debian\nsuites: bookworm\n\
                    # Suites: bookworm-backports\ncomponents: main\n\
                    \n\
                    Types: deb-src\nURIs: http://mirror.example/debian\nSuites: bookworm-backports\n\
                    \n\
                    # Types: deb\n# URIs: http://mirror.example/debian\n# Suites: bookworm-backports\n";
        assert!(serves(text, Format::Deb822, "bookworm"));
        assert!(!serves(text, Format::Deb822, "bookworm-backports"));
        for enabled in ["yes", "Yes", "true", "1"] {
            let text =
                format!("Types: deb\nURIs: http://m.example/d\nSuites: s\nEnabled: {enabled}\n");
            assert!(serves(&text, Format::Deb822, "s"), "{enabled}");
        }
        for disabled in ["no", "No", "false", "off", "0"] {
            let text =
                format!("Types: deb\nURIs: http://m.example/d\nSuites: s\nEnabled: {disabled}\n");
            assert!(!serves(&text, Format::Deb822, "s"), "{disabled}");
        }
    }

    #[test]
    fn deb822_lists_continuations_and_an_inline_key() {
        let text =
            "Types: deb deb-src\nURIs: http://one.example/debian\n http://two.example/debian\n\
                    Suites: bookworm bookworm-updates\nComponents: main\n\
                    Signed-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n mQINBGP...\n \
                    -----END PGP PUBLIC KEY BLOCK-----\n\
                    \n   \n\
                    Types: deb\nURIs: http://security.example/debian-security\n\
                    Suites: bookworm-security\nSigned-By: /usr/share/keyrings/k.gpg\n";
        let sources = parse(text, Format::Deb822);
        assert_eq!(sources.len(), 2);
        assert_eq!(
            sources[0].uris,
            ["http://one.example/debian", "http://two.example/debian"]
        );
        assert!(sources[0].serves("bookworm-updates"));
        assert_eq!(
            sources[0].signed_by.as_deref(),
            Some(
                "\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n mQINBGP...\n \
                 -----END PGP PUBLIC KEY BLOCK-----"
            )
        );
        assert_eq!(
            sources[1].signed_by.as_deref(),
            Some("/usr/share/keyrings/k.gpg")
        );
    }

    #[test]
    fn the_format_follows_the_file_name() {
        assert_eq!(
            Format::of(Path::new("/etc/apt/sources.list")),
            Some(Format::OneLine)
        );
        assert_eq!(
            Format::of(Path::new("/etc/apt/sources.list.d/x.list")),
            Some(Format::OneLine)
        );
        assert_eq!(
            Format::of(Path::new("/etc/apt/sources.list.d/debian.sources")),
            Some(Format::Deb822)
        );
        assert_eq!(
            Format::of(Path::new("/etc/apt/sources.list.d/x.list.save")),
            None
        );
    }
}
