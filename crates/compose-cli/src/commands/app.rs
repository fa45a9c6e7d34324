//! Which app a device command (`state`, `ps`, `logs`, `down`) acts on: `-a` by id, uuid or
//! fleet name, or, as docker compose users expect of a project, the only app there is.

use anyhow::bail;
use composer::target::DeviceConfig;
use composer::{AppId, AppSummary, Composer, CurrentState, list_apps};

/// The composer of the app `-a` names (see [`select`]) on the engine of `device`, that
/// app's state, and its name for messages; an app the engine holds nothing of is an error (see
/// [`super::state::require_app`]).
pub async fn existing(
    device: &super::up::DeviceArgs,
    wanted: Option<&str>,
) -> anyhow::Result<(Composer, CurrentState, String)> {
    let (docker, options) = device.connect(&DeviceConfig::default()).await?;
    let app = select(&docker, wanted).await?;
    let name = wanted.map_or_else(|| app.to_string(), str::to_owned);
    let composer = Composer::new(docker, app, options);
    let state = super::state::require_app(&composer, &name).await?;
    Ok((composer, state, name))
}

/// The app `-a` names (id, uuid or fleet name), or the only one on the engine when `-a` is
/// not given. Several apps without `-a`, or a name no app has, are errors.
pub async fn select(docker: &bollard::Docker, wanted: Option<&str>) -> anyhow::Result<AppId> {
    let apps = list_apps(docker).await?;
    match wanted {
        Some(text) => by_name(&apps, text),
        None => only_app(&apps),
    }
}

fn by_name(apps: &[AppSummary], text: &str) -> anyhow::Result<AppId> {
    // An id or uuid is the app's own; only then is it looked up as a name.
    if let Some(app) = apps
        .iter()
        .find(|a| text == a.id.to_string() || text == a.uuid)
    {
        return Ok(AppId::Id(app.id));
    }
    let named: Vec<&AppSummary> = apps.iter().filter(|a| a.is_named(text)).collect();
    match named.as_slice() {
        [app] => Ok(AppId::Id(app.id)),
        // Nothing of it on the engine: the caller says so in its own words ("no app …").
        [] => Ok(text.parse().unwrap_or(AppId::Uuid(text.to_owned()))),
        several => bail!(
            "{} apps are named {text}; choose one by id with -a: {}",
            several.len(),
            listing(several.iter().copied())
        ),
    }
}

fn only_app(apps: &[AppSummary]) -> anyhow::Result<AppId> {
    match apps {
        [app] => Ok(AppId::Id(app.id)),
        [] => bail!("no app runs under the composer on this engine"),
        several => bail!(
            "{} apps run on this engine; choose one with -a: {}",
            several.len(),
            listing(several.iter())
        ),
    }
}

/// `ID (NAME, UUID)` for each app, for an error that asks to choose.
fn listing<'a>(apps: impl Iterator<Item = &'a AppSummary>) -> String {
    apps.map(|a| {
        let name = a.name.as_deref().unwrap_or("no name");
        format!("{} ({name}, {})", a.id, a.uuid)
    })
    .collect::<Vec<_>>()
    .join(", ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn app(id: u64, uuid: &str, name: &str) -> AppSummary {
        AppSummary {
            id,
            uuid: uuid.to_owned(),
            name: Some(name.to_owned()),
        }
    }

    #[test]
    fn an_id_or_uuid_wins_over_a_name_and_a_name_finds_its_app() {
        let apps = [app(1, "u1", "2"), app(2, "u2", "web")];
        assert_eq!(by_name(&apps, "2").unwrap(), AppId::Id(2));
        assert_eq!(by_name(&apps, "u1").unwrap(), AppId::Id(1));
        assert_eq!(by_name(&apps, "web").unwrap(), AppId::Id(2));
        assert_eq!(by_name(&apps, "nope").unwrap(), AppId::Uuid("nope".into()));
    }

    #[test]
    fn a_shared_name_or_several_apps_without_a_choice_are_errors_listing_them() {
        let apps = [app(1, "u1", "web"), app(2, "u2", "web")];
        let e = by_name(&apps, "web").unwrap_err().to_string();
        assert!(
            e.contains("1 (web, u1)") && e.contains("2 (web, u2)"),
            "{e}"
        );
        let e = only_app(&apps).unwrap_err().to_string();
        assert!(e.contains("2 apps run") && e.contains("-a"), "{e}");
        assert!(only_app(&[]).is_err());
        assert_eq!(only_app(&apps[..1]).unwrap(), AppId::Id(1));
    }
}
