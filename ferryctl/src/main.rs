//! ferryctl: operate a Ferry fleet and sign releases.
//!
//! - [`args`]: the command line, parsed in one place.
//! - [`release`], [`root`]: offline key generation, release packing and signing, trust roots.
//!   The private keys they read never leave this machine.
//! - [`repository`]: a static release repository (offline): releases and their signed index.
//! - [`client`]: the server API, and the tables and JSON its commands print.

mod args;
mod client;
mod release;
mod repository;
mod root;
mod table;

use anyhow::Context as _;
use args::{
    AuditCommand, BatchesCommand, CampaignsCommand, CheckCommand, Cli, Command, DdiCommand,
    HistoryCommand, HostsCommand, ItemsCommand, MqttCommand, PackagesCommand, ReleaseCommand,
    ReleasesCommand, RootCommand, ServerArgs, TenantsCommand, TokensCommand, UpdateCommand,
    UsersCommand, WebhooksCommand,
};

use client::Client;
use ferry_manifests::wire::{
    BatchRequest, CampaignRequest, CampaignTarget, ItemEdit, TokenRequest, TriggerRequest,
};

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = args::parse();
    if let Err(e) = run(cli) {
        eprintln!("ferryctl: {}", message(&e));
        std::process::exit(1);
    }
}

/// An error and its causes on one line, each said once (a cause whose text the message
/// already holds, as an I/O error inside "cannot read key file X: …", is not repeated).
fn message(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// Runs one command. Offline commands (keys, release build, trust roots) never touch the
/// network; the others build the API client from the global flags, once.
fn run(cli: Cli) -> anyhow::Result<()> {
    let Cli {
        server,
        json,
        command,
    } = cli;
    let api = || Client::new(&server);
    match command {
        Command::Keygen { out } => release::keygen(&out),
        Command::Release { command } => release_commands(command, &server, json),
        Command::Root { command } => root_commands(command, &server),
        Command::Hosts { command } => hosts_commands(command, &server, json),
        Command::Releases {
            command: ReleasesCommand::List,
        } => api()?.releases(json),
        Command::Releases {
            command:
                ReleasesCommand::Withdraw {
                    item,
                    version,
                    reason,
                },
        } => api()?.withdraw(&item, &version, reason, json),
        Command::History { command } => history_commands(command, &server, json),
        Command::Items { command } => items_commands(command, &server, json),
        Command::Packages {
            command:
                PackagesCommand::Search {
                    name,
                    older_than,
                    pending,
                    category,
                },
        } => Client::new(&server)?.packages_search(
            &client::PackageSearch {
                name: name.as_deref(),
                older_than: older_than.as_deref(),
                pending,
                category: category.as_deref(),
            },
            json,
        ),
        Command::Packages {
            command: PackagesCommand::Hosts { category },
        } => Client::new(&server)?.packages_hosts(category.as_deref(), json),
        Command::Mqtt { command } => mqtt_commands(command, &server, json),
        Command::Webhooks { command } => webhooks_commands(command, &server, json),
        Command::Ddi { command } => {
            let api = Client::new(&server)?;
            match command {
                DdiCommand::Token { host } => api.ddi_token(&host, json),
                DdiCommand::GatewayToken { rotate } => api.ddi_gateway_token(rotate, json),
            }
        }
        Command::Tokens { command } => tokens_commands(command, &server, json),
        Command::Users { command } => users_commands(command, &server, json),
        Command::Tenants { command } => match command {
            TenantsCommand::Add { name } => Client::new(&server)?.tenant_add(&name, json),
            TenantsCommand::List => Client::new(&server)?.tenants(json),
        },
        Command::Audit {
            command: AuditCommand::List { user, since },
        } => Client::new(&server)?.audit(user.as_deref(), since.as_deref(), json),
        Command::Campaigns { command } => campaigns_commands(command, &server, json),
        Command::UpdateBatches { command } => update_batches_commands(command, &server, json),
        Command::Update { command } => update_commands(command, &server, json),
        Command::Check {
            what: Some(CheckCommand::Item { item, host }),
            ..
        } => api()?.check_now(Some(host), Some(item), json),
        Command::Check {
            what: None,
            host,
            item,
        } => api()?.check_now(host, item, json),
    }
}

/// `ferryctl release`: release build, publish, index and mirrors.
fn release_commands(
    command: ReleaseCommand,
    server: &ServerArgs,
    json: bool,
) -> anyhow::Result<()> {
    let api = || Client::new(server);
    match command {
        ReleaseCommand::Build(args) => release::build(&args),
        ReleaseCommand::Publish {
            outdir,
            to_dir: Some(dir),
            index,
            mirrors,
            delta_from_releases,
            metered_allowed,
        } => {
            if metered_allowed {
                anyhow::bail!("--metered-allowed is kept by a server; a static repository has no such setting (devices of a repository decide with their own `metered`)");
            }
            if !mirrors.is_empty() {
                anyhow::bail!("--mirror records mirrors on a server; a static repository lists its artifact URLs in the signed manifests (`ferryctl release build --url`)");
            }
            repository::publish(&outdir, &dir, &index, delta_from_releases)
        }
        ReleaseCommand::Publish {
            outdir,
            index,
            mirrors,
            metered_allowed,
            ..
        } => {
            if !index.key.is_empty() {
                anyhow::bail!("--key signs a repository's index: it needs --to-dir DIR (a server holds no keys)");
            }
            api()?.publish_dir(&outdir, &mirrors, metered_allowed, json)
        }
        ReleaseCommand::Index { dir, index } => repository::reindex(&dir, &index),
        ReleaseCommand::Mirrors {
            item,
            version,
            mirrors,
        } => api()?.record_mirrors(&item, &version, &mirrors, json),
        ReleaseCommand::MeteredAllowed { item, version, off } => {
            api()?.metered_allowed(&item, &version, !off, json)
        }
    }
}

/// `ferryctl root`: trust roots: init and update offline, show, publish.
fn root_commands(command: RootCommand, server: &ServerArgs) -> anyhow::Result<()> {
    let api = || Client::new(server);
    match command {
        RootCommand::Init {
            root_keys,
            release_keys,
            root_threshold,
            release_threshold,
            expires_in_days,
            out,
        } => root::init(
            &root_keys,
            &release_keys,
            root_threshold,
            release_threshold,
            expires_in_days,
            &out,
        ),
        RootCommand::Update {
            from,
            sign_with,
            add_release_keys,
            remove_release_keys,
            add_root_keys,
            remove_root_keys,
            root_threshold,
            release_threshold,
            expires_in_days,
            out,
        } => root::update(&root::Changes {
            from,
            sign_with,
            add_release_keys,
            remove_release_keys,
            add_root_keys,
            remove_root_keys,
            root_threshold,
            release_threshold,
            expires_in_days,
            out,
        }),
        RootCommand::Show { file } => root::show(&file),
        RootCommand::Publish { file } => api()?.publish_root(&file),
    }
}

/// `ferryctl hosts`: hosts.
fn hosts_commands(command: HostsCommand, server: &ServerArgs, json: bool) -> anyhow::Result<()> {
    let api = || Client::new(server);
    match command {
        HostsCommand::List => api()?.hosts(json),
        HostsCommand::Check { host } => api()?.check_now(Some(host), None, json),
        HostsCommand::Edit {
            host,
            tags,
            friendly_name,
            share_ok,
        } => api()?.edit_host(&host, (tags, friendly_name, share_ok), json),
        HostsCommand::Show { host } => api()?.show_host(&host, json),
        HostsCommand::Accept { host } => api()?.accept_host(&host, json),
        HostsCommand::Remove { host } => api()?.remove_host(&host, json),
    }
}

/// `ferryctl history`: update history and live output.
fn history_commands(
    command: HistoryCommand,
    server: &ServerArgs,
    json: bool,
) -> anyhow::Result<()> {
    let api = || Client::new(server);
    match command {
        HistoryCommand::List { host, item } => {
            api()?.history(host.as_deref(), item.as_deref(), json)
        }
        HistoryCommand::Tail {
            id,
            follow,
            timeout_secs,
        } => api()?.tail(&id, follow, timeout_secs, json),
        HistoryCommand::Show { id } => api()?.history_show(&id, json),
    }
}

/// `ferryctl items`: items.
fn items_commands(command: ItemsCommand, server: &ServerArgs, json: bool) -> anyhow::Result<()> {
    let api = || Client::new(server);
    match command {
        ItemsCommand::List => api()?.items(json),
        ItemsCommand::Edit {
            name,
            featured,
            icon_url,
            deactivate,
            activate,
        } => {
            let deactivated = match (deactivate, activate) {
                (true, _) => Some(true),
                (false, true) => Some(false),
                (false, false) => None,
            };
            let edit = ItemEdit {
                featured,
                icon_url,
                deactivated,
            };
            api()?.item_edit(&name, &edit, json)
        }
    }
}

/// `ferryctl webhooks`: endpoints told of events, and their deliveries.
fn webhooks_commands(
    command: WebhooksCommand,
    server: &ServerArgs,
    json: bool,
) -> anyhow::Result<()> {
    let api = Client::new(server)?;
    match command {
        WebhooksCommand::List => api.webhooks(json),
        WebhooksCommand::Add {
            url,
            events,
            secret_file,
            description,
        } => {
            let req = ferry_manifests::wire::WebhookRequest {
                url: Some(url),
                events,
                secret: Some(client::read_secret(&secret_file, "secret")?),
                description,
            };
            api.webhook_add(&req, json)
        }
        WebhooksCommand::Remove { id } => api.webhook_remove(&id, json),
        WebhooksCommand::Deliveries { failing } => api.webhook_deliveries(failing, json),
    }
}

/// `ferryctl mqtt`: the MQTT bridge's broker connections.
fn mqtt_commands(command: MqttCommand, server: &ServerArgs, json: bool) -> anyhow::Result<()> {
    let api = || Client::new(server);
    match command {
        MqttCommand::List => api()?.mqtt(json),
        MqttCommand::Add {
            name,
            url,
            settings,
        } => {
            let mut req = client::mqtt_request(&settings)?;
            req.name = Some(name);
            req.url = Some(url);
            api()?.mqtt_add(&req, json)
        }
        MqttCommand::Edit {
            name,
            url,
            settings,
            no_password,
            no_ca,
        } => {
            let mut req = client::mqtt_request(&settings)?;
            req.url = url;
            if no_password {
                req.password = Some(String::new());
            }
            if no_ca {
                req.ca_pem = Some(String::new());
            }
            api()?.mqtt_edit(&name, &req, json)
        }
        MqttCommand::Remove { name } => api()?.mqtt_remove(&name, json),
        MqttCommand::Test { name } => api()?.mqtt_test(&name, json),
    }
}

/// `ferryctl users`: users and their roles.
fn users_commands(command: UsersCommand, server: &ServerArgs, json: bool) -> anyhow::Result<()> {
    let api = || Client::new(server);
    match command {
        UsersCommand::Add {
            name,
            role,
            tag,
            password_file,
            tenant,
        } => api()?.user_add(
            &ferry_manifests::wire::UserRequest {
                name,
                role,
                tag,
                password: read_password(password_file.as_deref())?,
                tenant,
            },
            json,
        ),
        UsersCommand::List => api()?.users(json),
        UsersCommand::Edit {
            name,
            role,
            tag,
            password_file,
        } => api()?.user_edit(
            &name,
            &ferry_manifests::wire::UserEdit {
                role,
                tag,
                password: read_password(password_file.as_deref())?,
            },
            json,
        ),
        UsersCommand::Remove { name } => api()?.user_remove(&name),
    }
}

/// A password from `--password-file`: its first line (`-`: standard input).
fn read_password(file: Option<&std::path::Path>) -> anyhow::Result<Option<String>> {
    let Some(file) = file else { return Ok(None) };
    let text = if file == std::path::Path::new("-") {
        std::io::read_to_string(std::io::stdin())
            .context("reading the password from standard input")?
    } else {
        std::fs::read_to_string(file)
            .with_context(|| format!("cannot read --password-file {}", file.display()))?
    };
    let password = text.lines().next().unwrap_or("").to_string();
    if password.is_empty() {
        anyhow::bail!(
            "--password-file {} holds no password on its first line",
            file.display()
        );
    }
    Ok(Some(password))
}

/// `ferryctl tokens`: operator and enrolment tokens.
fn tokens_commands(command: TokensCommand, server: &ServerArgs, json: bool) -> anyhow::Result<()> {
    let api = || Client::new(server);
    match command {
        TokensCommand::Create {
            name,
            kind,
            expires_in_days,
            uses,
            require_acceptance,
            user,
        } => api()?.token_create(
            &TokenRequest {
                name,
                kind: Some(kind),
                expires_in_days,
                uses,
                needs_acceptance: require_acceptance,
                user,
            },
            json,
        ),
        TokensCommand::List => api()?.tokens(json),
        TokensCommand::Revoke { id } => api()?.token_revoke(&id),
    }
}

/// `ferryctl campaigns`: campaigns.
fn campaigns_commands(
    command: CampaignsCommand,
    server: &ServerArgs,
    json: bool,
) -> anyhow::Result<()> {
    let api = || Client::new(server);
    match command {
        CampaignsCommand::Create {
            item,
            version,
            all,
            tags,
            hosts,
            require_acceptance,
            waves,
            max_failure_rate,
            success_threshold,
            window,
            name,
            allow_empty,
            require_approval,
            observe,
            rollback_on_regression,
            regression_max_share,
            regression_max_excess,
            regression_min_hosts,
        } => {
            let target = if all {
                CampaignTarget::All
            } else if !tags.is_empty() {
                CampaignTarget::Tags(tags)
            } else if !hosts.is_empty() {
                CampaignTarget::Hosts(hosts)
            } else {
                anyhow::bail!("say which hosts: --all, --tag T,... or --host H,...");
            };
            let request = CampaignRequest {
                name,
                item,
                version,
                target,
                require_acceptance,
                waves,
                success_threshold,
                max_failure_rate,
                window,
                allow_empty,
                require_approval,
                observe_secs: observe,
                rollback_on_regression,
                regression_max_share,
                regression_max_excess,
                regression_min_hosts,
            };
            api()?.campaign_create(&request, json)
        }
        CampaignsCommand::List { status } => api()?.campaigns(status.as_deref(), json),
        CampaignsCommand::Show { id } => api()?.campaign_action(&id, None, json),
        CampaignsCommand::Edit {
            id,
            success_threshold,
            max_failure_rate,
            window,
            waves,
        } => {
            let edit = ferry_manifests::wire::CampaignEdit {
                success_threshold,
                max_failure_rate,
                window,
                waves,
            };
            api()?.campaign_edit(&id, &edit, json)
        }
        CampaignsCommand::Pause { id } => api()?.campaign_action(&id, Some("pause"), json),
        CampaignsCommand::Approve { id } => api()?.campaign_action(&id, Some("approval"), json),
        CampaignsCommand::Resume { id } => api()?.campaign_action(&id, Some("resume"), json),
        CampaignsCommand::Cancel { id } => api()?.campaign_action(&id, Some("cancel"), json),
    }
}

/// `ferryctl update-batches`: batch updates.
fn update_batches_commands(
    command: BatchesCommand,
    server: &ServerArgs,
    json: bool,
) -> anyhow::Result<()> {
    let api = || Client::new(server);
    match command {
        BatchesCommand::List { status } => api()?.batches(status.as_deref(), json),
        BatchesCommand::Show { id } => api()?.batch_show(&id, json),
        BatchesCommand::Follow { id, timeout_secs } => api()?.batch_follow(&id, timeout_secs, json),
    }
}

/// `ferryctl update`: installs: triggers, batches, attaching to a terminal.
fn update_commands(command: UpdateCommand, server: &ServerArgs, json: bool) -> anyhow::Result<()> {
    let api = || Client::new(server);
    match command {
        UpdateCommand::BatchHost {
            host,
            category,
            exclude,
            interactive,
            follow,
        } => {
            let request = BatchRequest::Host {
                host,
                category,
                exclude,
                interactive,
            };
            api()?.batch_create(&request, &follow, json)
        }
        UpdateCommand::Attach { id } => api()?.attach(&id),
        UpdateCommand::Cancel { id } => api()?.cancel_update(&id, json),
        UpdateCommand::BatchItem {
            item,
            to_version,
            hosts,
            follow,
        } => {
            let request = BatchRequest::Item {
                item,
                to_version,
                hosts,
            };
            api()?.batch_create(&request, &follow, json)
        }
        UpdateCommand::Trigger {
            host,
            item,
            version,
            force,
            follow,
            interactive,
            hide_input,
            metered_allowed,
        } => api()?.trigger(
            &TriggerRequest {
                host,
                item,
                version,
                force,
                interactive,
                hide_input,
                metered_allowed,
            },
            json,
            follow,
        ),
    }
}
