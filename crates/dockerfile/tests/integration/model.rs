//! `process` against a model of the reference: split on '\n', keep column-0 `#` lines, and on
//! every other line replace `/%%([A-Z][A-Z_]+)%%/g` as JavaScript's `String.replace` does.
//! `process` scans the whole text in one pass instead; this pins that the two agree.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use proptest::prelude::*;

fn model(template: &str, vars: &HashMap<String, String>) -> Result<String, (String, usize)> {
    let token = regex::Regex::new("%%([A-Z][A-Z_]+)%%").unwrap();
    let mut lines = Vec::new();
    for (index, line) in template.split('\n').enumerate() {
        if line.starts_with('#') {
            lines.push(line.to_owned());
            continue;
        }
        let mut rendered = String::new();
        let mut copied = 0;
        for captures in token.captures_iter(line) {
            let whole = captures.get(0).unwrap();
            let name = &captures[1];
            let value = vars.get(name).ok_or((name.to_owned(), index + 1))?;
            rendered.push_str(&line[copied..whole.start()]);
            rendered.push_str(value);
            copied = whole.end();
        }
        rendered.push_str(&line[copied..]);
        lines.push(rendered);
    }
    Ok(lines.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn one_pass_equals_the_line_model(
        template in proptest::collection::vec(
            prop::sample::select(vec!["%%AB%%", "%%A_%%", "%%B%%", "%%", "%", "#", "\n", "\r", "A", "_", "x", " "]),
            0..40,
        ).prop_map(|pieces| pieces.concat()),
        defined in proptest::collection::vec(prop::sample::select(vec!["AB", "A_", "B_", "BA"]), 0..4),
    ) {
        let vars: HashMap<String, String> = defined
            .into_iter()
            .enumerate()
            .map(|(i, name)| (name.to_owned(), format!("<{i}%%AB%%>")))
            .collect();
        let ours = dockerfile::process(&template, &vars).map_err(|e| match e {
            dockerfile::Error::UndefinedVariable { name, line } => (name, line),
        });
        prop_assert_eq!(ours, model(&template, &vars));
    }
}
