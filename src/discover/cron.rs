//! Reading crontabs (`/etc/crontab`, `/etc/cron.d/*`, users' crontabs) the way Debian's cron reads them.
//!
//! Debian's cron (vixie cron 3.0pl1 with Debian's patches) skips blank lines and lines whose
//! first non-blank character is `#`; tries each other line as an environment setting
//! (`NAME=value`, `NAME = "value"`), then as an entry: five time fields (or an `@macro`), the
//! user in system crontabs, then the command up to the end of the line. A line it cannot read
//! is skipped, and so is a last line without a newline. The time fields are checked the way
//! cron checks them (`get_list`), so a line cron refuses is reported as skipped.

/// A place in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The file's path.
    pub file: String,
    /// The 1-based line within that file.
    pub line: usize,
}

/// One job: when, as whom, what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronEntry {
    /// The five time fields joined by single spaces (`* * * * *`), or the macro (`@daily`).
    pub schedule: String,
    /// The user the job runs as: the line's user field in a system crontab, the crontab's
    /// owner in a user's crontab.
    pub user: Option<String>,
    /// The rest of the line as written (inner spacing and `%` kept), its end trimmed.
    pub command: String,
    pub at: Location,
}

/// What one crontab holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CronFile {
    pub entries: Vec<CronEntry>,
    /// Environment settings (`SHELL`, `PATH`, `MAILTO`, …) in file order, quotes removed.
    pub variables: Vec<(String, String, Location)>,
    /// Lines that are neither blank, comments, settings nor entries: lines cron refuses (too
    /// few or invalid fields, an unknown macro, a sixth `*` field, a missing user, a last line
    /// without a newline) and entries without a command (cron takes them but runs nothing).
    pub skipped: Vec<Location>,
}

/// A system crontab (`/etc/crontab`, `/etc/cron.d/*`): time fields, user, command.
pub fn parse_system(file: &str, text: &str) -> CronFile {
    read(file, text, None)
}

/// A user's crontab (`crontab -l`, `/var/spool/cron/crontabs/USER`): time fields, command;
/// every entry runs as `user`.
pub fn parse_user(file: &str, user: &str, text: &str) -> CronFile {
    read(file, text, Some(user))
}

/// Whether a schedule runs every minute: `* * * * *` or any fields that select every value
/// (`*/1 * * * *`, `0-59 0-23 1-31 jan-dec *`, …). Macros never do.
pub fn is_every_minute(schedule: &str) -> bool {
    let texts: Vec<&str> = schedule.split_whitespace().collect();
    let [minute, hour, day, month, weekday] = texts.as_slice() else {
        return false;
    };
    let all = |text: &str, field: &Field| field_values(text, field).is_some_and(|v| is_full(&v));
    let Some(mut weekdays) = field_values(weekday, &DAY_OF_WEEK) else {
        return false;
    };
    // 0 and 7 are both Sunday.
    weekdays[0] |= weekdays[7];
    let every_weekday = is_full(&weekdays[..7]);
    let every_day = all(day, &DAY_OF_MONTH);
    // Day of month and day of week: both must match when either starts with `*`, one otherwise.
    let days = if day.starts_with('*') || weekday.starts_with('*') {
        every_day && every_weekday
    } else {
        every_day || every_weekday
    };
    all(minute, &MINUTE) && all(hour, &HOUR) && all(month, &MONTH) && days
}

/// The macros cron knows, spelled as it requires (lower case).
use crate::spec::checks::CRON_MACROS as MACROS;

/// A time field: its bounds and, for months and weekdays, the names cron accepts.
struct Field {
    low: u32,
    high: u32,
    names: &'static [&'static str],
}

const MINUTE: Field = Field {
    low: 0,
    high: 59,
    names: &[],
};
const HOUR: Field = Field {
    low: 0,
    high: 23,
    names: &[],
};
const DAY_OF_MONTH: Field = Field {
    low: 1,
    high: 31,
    names: &[],
};
const MONTH: Field = Field {
    low: 1,
    high: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const DAY_OF_WEEK: Field = Field {
    low: 0,
    high: 7,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"],
};

impl Field {
    fn holds(&self, value: u64) -> bool {
        (u64::from(self.low)..=u64::from(self.high)).contains(&value)
    }
}

/// The time fields in their order on a line.
const FIELDS: [&Field; 5] = [&MINUTE, &HOUR, &DAY_OF_MONTH, &MONTH, &DAY_OF_WEEK];

fn read(file: &str, text: &str, owner: Option<&str>) -> CronFile {
    let mut cron = CronFile::default();
    let lines: Vec<&str> = text.lines().collect();
    let unterminated = !text.ends_with('\n');
    for (index, raw) in lines.iter().enumerate() {
        let line = skip_blanks(raw);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = Location {
            file: file.to_string(),
            line: index + 1,
        };
        // cron stops at a last line without a newline (`crontab` refuses to install it).
        if unterminated && index + 1 == lines.len() {
            cron.skipped.push(at);
        } else if let Some((name, value)) = variable(line) {
            cron.variables.push((name, value, at));
        } else if let Some(entry) = entry(line, owner, &at) {
            cron.entries.push(entry);
        } else {
            cron.skipped.push(at);
        }
    }
    cron
}

/// The line without its leading blanks (spaces and tabs, as cron skips them).
fn skip_blanks(text: &str) -> &str {
    text.trim_start_matches([' ', '\t'])
}

/// The text up to the first blank, and the rest.
fn token(text: &str) -> (&str, &str) {
    let end = text.find([' ', '\t']).unwrap_or(text.len());
    text.split_at(end)
}

/// C's `isspace` in the C locale.
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// An environment setting, read as cron's `load_env` does: a name (quotable, ending at a
/// blank or `=`), `=` with optional blanks around it, a value either quoted (nothing but
/// blanks after the closing quote) or the rest of the line, its end trimmed. An empty
/// unquoted value is not a setting (cron then fails to read the line as an entry).
fn variable(line: &str) -> Option<(String, String)> {
    let (name, rest) = variable_name(line)?;
    let rest = rest.trim_start_matches(is_c_space).strip_prefix('=')?;
    let value = variable_value(rest.trim_start_matches(is_c_space))?;
    Some((name, value))
}

fn variable_name(line: &str) -> Option<(String, &str)> {
    if let Some(quote) = line.chars().next().filter(|c| matches!(c, '"' | '\'')) {
        let inner = &line[1..];
        let end = inner.find(quote)?;
        let name = &inner[..end];
        return (!name.contains('=')).then(|| (name.to_string(), &inner[end + 1..]));
    }
    let end = line
        .find(|c: char| c == '=' || is_c_space(c))
        .unwrap_or(line.len());
    Some((line[..end].to_string(), &line[end..]))
}

fn variable_value(rest: &str) -> Option<String> {
    let quote = rest.chars().next()?;
    if !matches!(quote, '"' | '\'') {
        return Some(rest.trim_end_matches(is_c_space).to_string());
    }
    let inner = &rest[1..];
    let end = inner.find(quote)?;
    let after = &inner[end + 1..];
    after
        .chars()
        .all(is_c_space)
        .then(|| inner[..end].to_string())
}

/// An entry: schedule, then the user (system crontabs), then a non-empty command.
fn entry(line: &str, owner: Option<&str>, at: &Location) -> Option<CronEntry> {
    let (schedule, rest) = schedule(line)?;
    // cron refuses a sixth field starting with `*` (a common typo) as a bad command.
    if rest.starts_with('*') {
        return None;
    }
    let (user, command) = match owner {
        Some(user) => (user, rest),
        None => {
            let (user, rest) = token(rest);
            (user, skip_blanks(rest))
        }
    };
    let command = command.trim_end();
    if user.is_empty() || command.is_empty() {
        return None;
    }
    Some(CronEntry {
        schedule,
        user: Some(user.to_string()),
        command: command.to_string(),
        at: at.clone(),
    })
}

/// The schedule (a known macro, or five valid fields joined by spaces) and the rest of the
/// line after the blanks that follow it.
fn schedule(line: &str) -> Option<(String, &str)> {
    if line.starts_with('@') {
        let (word, rest) = token(line);
        return MACROS
            .contains(&word)
            .then(|| (word.to_string(), skip_blanks(rest)));
    }
    let mut texts = Vec::with_capacity(FIELDS.len());
    let mut rest = line;
    for field in FIELDS {
        let (text, after) = token(rest);
        field_values(text, field)?;
        texts.push(text);
        rest = skip_blanks(after);
    }
    Some((texts.join(" "), rest))
}

/// Which of a field's values (`low..=high`) a field's text selects, read as cron's `get_list`
/// does: ranges separated by commas; whatever follows the last range is ignored. `None` when
/// cron refuses the field.
fn field_values(text: &str, field: &Field) -> Option<Vec<bool>> {
    let width = usize::try_from(field.high - field.low + 1).ok()?;
    let mut selected = vec![false; width];
    let mut rest = text;
    loop {
        rest = range(rest, field, &mut selected)?;
        match rest.strip_prefix(',') {
            Some(after) => rest = after,
            None => return Some(selected),
        }
    }
}

/// One range (`*`, `N`, `N-M`, each but `N` with an optional `/STEP`), marked in `selected`;
/// the text after it.
fn range<'t>(text: &'t str, field: &Field, selected: &mut [bool]) -> Option<&'t str> {
    let (first, last, rest) = if let Some(rest) = text.strip_prefix('*') {
        (u64::from(field.low), u64::from(field.high), rest)
    } else {
        let (first, rest) = number(text, field.low, field.names)?;
        let Some(rest) = rest.strip_prefix('-') else {
            // Debian's cron refuses a step after a single number (`5/10`).
            if rest.starts_with('/') {
                return None;
            }
            select(selected, field, first)?;
            return Some(rest);
        };
        let (last, rest) = number(rest, field.low, field.names)?;
        // Both ends must be in bounds, even when the range selects nothing (`5-1`).
        if !field.holds(first) || !field.holds(last) {
            return None;
        }
        (first, last, rest)
    };
    let (step, rest) = match rest.strip_prefix('/') {
        Some(after) => number(after, 0, &[]).filter(|(step, _)| *step > 0)?,
        None => (1, rest),
    };
    let mut value = first;
    while value <= last {
        select(selected, field, value)?;
        value = value.saturating_add(step);
    }
    Some(rest)
}

/// A number or (for months and weekdays) a name, as cron's `get_number` reads it: the
/// leading letters and digits, all digits or a known name (case-insensitive).
fn number<'t>(text: &'t str, low: u32, names: &[&str]) -> Option<(u64, &'t str)> {
    let end = text
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(text.len());
    let (word, rest) = text.split_at(end);
    if word.is_empty() {
        return None;
    }
    if let Some(index) = names.iter().position(|n| n.eq_ignore_ascii_case(word)) {
        return Some((u64::from(low) + u64::try_from(index).ok()?, rest));
    }
    if !word.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((word.parse().unwrap_or(u64::MAX), rest))
}

/// Marks one value; `None` when it is out of the field's bounds (cron refuses the line).
fn select(selected: &mut [bool], field: &Field, value: u64) -> Option<()> {
    let offset = value.checked_sub(u64::from(field.low))?;
    let slot = selected.get_mut(usize::try_from(offset).ok()?)?;
    *slot = true;
    Some(())
}

fn is_full(selected: &[bool]) -> bool {
    selected.iter().all(|v| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN_CRONTAB: &str = "# /etc/crontab: system-wide crontab
# Unlike any other crontab you don't have to run the `crontab'
# command to install the new version when you edit this file
# and files in /etc/cron.d. These files also have username fields,
# that none of the other crontabs do.

SHELL=/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin

# Example of job definition:
# .---------------- minute (0 - 59)
# |  .------------- hour (0 - 23)
# |  |  .---------- day of month (1 - 31)
# |  |  |  .------- month (1 - 12) OR jan,feb,mar,apr ...
# |  |  |  |  .---- day of week (0 - 6) (Sunday=0 or 7) OR sun,mon,tue,wed,thu,fri,sat
# |  |  |  |  |
# *  *  *  *  * user-name command to be executed
17 *\t* * *\troot\tcd / && run-parts --report /etc/cron.hourly
25 6\t* * *\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }
47 6\t* * 7\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.weekly; }
52 6\t1 * *\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.monthly; }
#
";

    fn at(file: &str, line: usize) -> Location {
        Location {
            file: file.to_string(),
            line,
        }
    }

    /// The entries of a user's crontab as (schedule, command).
    fn user_entries(text: &str) -> Vec<(String, String)> {
        parse_user("crontab", "vito", text)
            .entries
            .into_iter()
            .map(|e| (e.schedule, e.command))
            .collect()
    }

    /// Whether a user's crontab of one line gives an entry.
    fn accepted(line: &str) -> bool {
        let cron = parse_user("crontab", "vito", &format!("{line}\n"));
        cron.entries.len() == 1 && cron.skipped.is_empty()
    }

    fn skipped_lines(cron: &CronFile) -> Vec<usize> {
        cron.skipped.iter().map(|at| at.line).collect()
    }

    #[test]
    fn forge_scheduler_in_etc_crontab_gives_user_and_command() {
        let cron = parse_system(
            "/etc/crontab",
            "* * * * * forge php8.2 /home/forge/example.com/artisan schedule:run\n",
        );
        assert_eq!(
            cron.entries,
            vec![CronEntry {
                schedule: "* * * * *".to_string(),
                user: Some("forge".to_string()),
                command: "php8.2 /home/forge/example.com/artisan schedule:run".to_string(),
                at: at("/etc/crontab", 1),
            }]
        );
        assert!(cron.skipped.is_empty());
    }

    #[test]
    fn vito_user_crontab_line_runs_as_the_crontab_owner() {
        let file = "/var/spool/cron/crontabs/vito";
        let text = "# DO NOT EDIT THIS FILE - edit the master and reinstall.\n\
                    * * * * * cd /home/vito/example.com && php artisan schedule:run >> /dev/null 2>&1\n";
        let cron = parse_user(file, "vito", text);
        assert_eq!(
            cron.entries,
            vec![CronEntry {
                schedule: "* * * * *".to_string(),
                user: Some("vito".to_string()),
                command: "cd /home/vito/example.com && php artisan schedule:run >> /dev/null 2>&1"
                    .to_string(),
                at: at(file, 2),
            }]
        );
    }

    #[test]
    fn debian_stock_crontab_gives_variables_and_four_root_entries() {
        let file = "/etc/crontab";
        let cron = parse_system(file, DEBIAN_CRONTAB);
        assert_eq!(
            cron.variables,
            vec![
                ("SHELL".to_string(), "/bin/sh".to_string(), at(file, 7)),
                (
                    "PATH".to_string(),
                    "/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin".to_string(),
                    at(file, 8)
                ),
            ]
        );
        let entries: Vec<(&str, &str, usize)> = cron
            .entries
            .iter()
            .map(|e| (e.schedule.as_str(), e.command.as_str(), e.at.line))
            .collect();
        assert_eq!(
            entries,
            vec![
                (
                    "17 * * * *",
                    "cd / && run-parts --report /etc/cron.hourly",
                    18
                ),
                (
                    "25 6 * * *",
                    "test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }",
                    19
                ),
                (
                    "47 6 * * 7",
                    "test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.weekly; }",
                    20
                ),
                (
                    "52 6 1 * *",
                    "test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.monthly; }",
                    21
                ),
            ]
        );
        assert!(
            cron.entries
                .iter()
                .all(|e| e.user.as_deref() == Some("root"))
        );
        assert!(cron.skipped.is_empty());
    }

    #[test]
    fn runs_of_spaces_and_tabs_separate_fields_and_the_command_keeps_its_spacing() {
        let entries = user_entries("  0\t \t5  * *\t1-5   echo  a\tb %s %%   \n");
        assert_eq!(
            entries,
            vec![("0 5 * * 1-5".to_string(), "echo  a\tb %s %%".to_string())]
        );
    }

    #[test]
    fn every_macro_takes_the_place_of_the_five_fields() {
        for word in MACROS {
            let cron = parse_system("f", &format!("{word}\troot  run it\n"));
            assert_eq!(cron.entries.len(), 1, "{word}");
            assert_eq!(cron.entries[0].schedule, word);
            assert_eq!(cron.entries[0].user.as_deref(), Some("root"));
            assert_eq!(cron.entries[0].command, "run it");
        }
    }

    #[test]
    fn unknown_or_capitalised_macros_are_skipped() {
        let cron = parse_user("f", "vito", "@Daily run\n@every run\n@daily run\n");
        assert_eq!(skipped_lines(&cron), vec![1, 2]);
        assert_eq!(cron.entries.len(), 1);
    }

    #[test]
    fn too_few_fields_or_no_command_are_skipped_with_their_location() {
        let text = "* * * * *\n* * * *\n@reboot\n* * * * * root\n* * * * * root run\n";
        let cron = parse_system("/etc/cron.d/x", text);
        assert_eq!(skipped_lines(&cron), vec![1, 2, 3, 4]);
        assert_eq!(cron.skipped[0], at("/etc/cron.d/x", 1));
        assert_eq!(cron.entries.len(), 1);
        assert_eq!(cron.entries[0].at.line, 5);
    }

    #[test]
    fn a_sixth_star_field_is_refused_as_cron_does() {
        assert!(!accepted("* * * * * * run"));
        assert!(!accepted("@daily *run"));
        let cron = parse_system("f", "* * * * * *root run\n");
        assert_eq!(skipped_lines(&cron), vec![1]);
    }

    #[test]
    fn fields_cron_refuses_make_the_line_skipped() {
        for line in [
            "60 * * * * run",
            "* 24 * * * run",
            "0 0 0 * * run",
            "0 0 * 0 * run",
            "0 0 * 13 * run",
            "0 0 * * 8 run",
            "5/10 * * * * run",
            "*/0 * * * * run",
            "5x * * * * run",
            "0x5 * * * * run",
            "5- * * * * run",
            ",5 * * * * run",
            "1,,2 * * * * run",
            "0-60 * * * * run",
            "0 0 1 january * run",
            "0 0 1 jan/2 * run",
            "0 0 * * sunday run",
            "5,6/2 * * * * run",
            "5/x * * * * run",
            "5--6 * * * * run",
            "59-3 24-3 * * * run",
            "0 0 60-5 * * run",
            "FOO BAR=1",
        ] {
            assert!(!accepted(line), "{line}");
        }
    }

    #[test]
    fn fields_cron_accepts_make_an_entry() {
        for line in [
            "*/5 * * * * run",
            "0-59/15 * * * * run",
            "05 * * * * run",
            "0 0 1 jan-mar * run",
            "0 0 1 JAN,feb * run",
            "0 0 * * mon-fri run",
            "0 0 * * Sun,sat run",
            "0 0 * * 0-7 run",
            "0 0 * * mon-7 run",
            "0 0 1 1-12/3 * run",
            "*/60 * * * * run",
            "5-1 * * * * run",
            "5! * * * * run",
            "*-5 * * * * run",
            "*,5 * * * * run",
            "5-6-7 * * * * run",
            "*/5/2 * * * * run",
        ] {
            assert!(accepted(line), "{line}");
        }
    }

    #[test]
    fn variables_accept_spaces_around_equals_and_quotes() {
        let text = "MAILTO=\"\"\nSHELL = /bin/bash\nFOO=\" a \"  \n'QUOTED'=x\n\
                    CRON_TZ='Europe/Berlin'\nHASH=a # b\n";
        let cron = parse_user("f", "vito", text);
        let variables: Vec<(&str, &str)> = cron
            .variables
            .iter()
            .map(|(name, value, _)| (name.as_str(), value.as_str()))
            .collect();
        assert_eq!(
            variables,
            vec![
                ("MAILTO", ""),
                ("SHELL", "/bin/bash"),
                ("FOO", " a "),
                ("QUOTED", "x"),
                ("CRON_TZ", "Europe/Berlin"),
                ("HASH", "a # b"),
            ]
        );
        assert!(cron.skipped.is_empty());
        assert!(cron.entries.is_empty());
    }

    #[test]
    fn settings_cron_cannot_read_are_skipped() {
        let text = "MAILTO=\nFOO= \t\nBAR=\"open\nBAZ=\"a\" b\n\"A=B\"=c\n";
        let cron = parse_user("f", "vito", text);
        assert!(cron.variables.is_empty());
        assert_eq!(skipped_lines(&cron), vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn comments_and_blank_lines_are_ignored_even_when_indented() {
        let text = "# DO NOT EDIT THIS FILE - edit the master and reinstall.\n\n   \n\t# x\n  * * * * * run\n";
        let cron = parse_user("f", "vito", text);
        assert_eq!(cron.entries.len(), 1);
        assert_eq!(cron.entries[0].at.line, 5);
        assert!(cron.skipped.is_empty());
    }

    #[test]
    fn a_last_line_without_newline_is_skipped_as_cron_does() {
        let cron = parse_user("f", "vito", "* * * * * first\n* * * * * second");
        assert_eq!(cron.entries.len(), 1);
        assert_eq!(skipped_lines(&cron), vec![2]);
        let cron = parse_user("f", "vito", "* * * * * first\n# a comment");
        assert!(cron.skipped.is_empty());
    }

    #[test]
    fn crlf_lines_are_read_and_the_carriage_return_is_trimmed() {
        let cron = parse_system("f", "SHELL=/bin/sh\r\n* * * * * root run\r\n");
        assert_eq!(cron.variables[0].1, "/bin/sh");
        assert_eq!(cron.entries[0].command, "run");
    }

    #[test]
    fn an_empty_crontab_has_nothing() {
        assert_eq!(parse_user("f", "vito", ""), CronFile::default());
    }

    #[test]
    fn every_minute_schedules_are_recognised() {
        for schedule in [
            "* * * * *",
            "*/1 * * * *",
            "0-59 * * * *",
            "0-29,30-59 0-23 1-31 jan-dec 0-6",
            "* * * * 0-7",
            "* * * * 1-7",
            "*-5 * * * *",
            "* * 1-31 * 1-5",
            "*\t*  * * *",
        ] {
            assert!(is_every_minute(schedule), "{schedule}");
        }
    }

    #[test]
    fn other_schedules_are_not_every_minute() {
        for schedule in [
            "*/5 * * * *",
            "0 * * * *",
            "* */2 * * *",
            "* * * * 1-5",
            "* * */2 * *",
            "* * * 1-6 *",
            "* * 1-15 * 1-5",
            "@hourly",
            "@reboot",
            "* * * *",
            "* * * * * *",
            "60 * * * *",
            "",
        ] {
            assert!(!is_every_minute(schedule), "{schedule}");
        }
    }
}
