//! Releases and trust roots: build and sign offline, publish, index a static repository.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use ferry_manifests::manifest::Layout;
use ferry_manifests::Category;

#[derive(Subcommand)]
pub enum RootCommand {
    /// Write version 1 of a trust root, signed by its root keys (offline).
    Init {
        /// Private root key that signs (repeatable); their public halves become the root keys.
        #[arg(long = "root-key", required = true)]
        root_keys: Vec<PathBuf>,
        /// Public release key devices will trust (repeatable).
        #[arg(long = "release-key", required = true)]
        release_keys: Vec<PathBuf>,
        /// How many root keys must sign the next root version.
        #[arg(long, default_value_t = 1)]
        root_threshold: usize,
        /// How many release keys must sign a release.
        #[arg(long, default_value_t = 1)]
        release_threshold: usize,
        /// Days until devices stop trusting this root unless a newer one arrives.
        #[arg(long, default_value_t = 365)]
        expires_in_days: u32,
        /// Where to write the signed root (e.g. root-1.json).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write the next version of a trust root (offline): add or retire keys, change
    /// thresholds, extend the expiry. It must be signed by enough of the current root keys
    /// and of the new ones.
    Update {
        /// The current root (e.g. root-1.json).
        #[arg(long)]
        from: PathBuf,
        /// Private root key that signs (repeatable).
        #[arg(long = "sign-with", required = true)]
        sign_with: Vec<PathBuf>,
        /// Public release key to trust from this version on (repeatable).
        #[arg(long = "add-release-key")]
        add_release_keys: Vec<PathBuf>,
        /// Key id of a release key to retire.
        #[arg(long = "remove-release-key")]
        remove_release_keys: Vec<String>,
        /// Public root key to add (repeatable); it must sign this version too.
        #[arg(long = "add-root-key")]
        add_root_keys: Vec<PathBuf>,
        /// Key id of a root key to retire.
        #[arg(long = "remove-root-key")]
        remove_root_keys: Vec<String>,
        /// New root-key threshold (unchanged when absent).
        #[arg(long)]
        root_threshold: Option<usize>,
        /// New release-key threshold (unchanged when absent).
        #[arg(long)]
        release_threshold: Option<usize>,
        /// Days until devices stop trusting this version unless a newer one arrives.
        #[arg(long, default_value_t = 365)]
        expires_in_days: u32,
        /// Where to write the signed next version (e.g. root-2.json).
        #[arg(long)]
        out: PathBuf,
    },
    /// Upload a root version to the server; devices fetch it at their next check-in.
    Publish {
        /// The signed root file.
        file: PathBuf,
    },
    /// Print a root file's version, expiry, keys and thresholds.
    Show {
        /// The signed root file.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum ReleaseCommand {
    /// Pack a directory into a tarball and write the signed manifest beside it (offline).
    Build(Box<BuildArgs>),
    /// Upload the tarballs and signed manifests in OUTDIR to the server; with --to-dir, add
    /// them to a static release repository instead (offline, no server).
    Publish {
        /// Directory written by `ferryctl release build`.
        outdir: PathBuf,
        /// A static release repository (served by any web host): the release goes into DIR
        /// and the item's signed index DIR/ITEM.index.json is written again.
        #[arg(long, value_name = "DIR")]
        to_dir: Option<PathBuf>,
        /// A base URL that also serves the artifacts (a mirror, a CDN, an object store's public
        /// URL): devices fetch BASE/ARTIFACT_NAME before the server's own copy. Upload the
        /// artifacts there yourself (repeatable, tried in order).
        #[arg(long = "mirror", value_name = "URL")]
        mirrors: Vec<String>,
        /// Installs of this release may download over a metered link (an urgent fix); other
        /// jobs wait for an unmetered one.
        #[arg(long)]
        metered_allowed: bool,
        /// With --to-dir: write a delta to each new release from up to N earlier releases of
        /// its item in DIR (0: none), kept only where it is smaller than the artifact.
        #[arg(long, value_name = "N", default_value_t = 3)]
        delta_from_releases: usize,
        #[command(flatten)]
        index: IndexArgs,
    },
    /// Record where else a published release's artifact is served, replacing what was
    /// recorded (no --mirror: none, devices use the server's copy).
    Mirrors {
        /// The release's item.
        item: String,
        /// The release's version.
        version: String,
        /// A base URL serving the artifact as BASE/ARTIFACT_NAME (repeatable, tried in order).
        #[arg(long = "mirror", value_name = "URL")]
        mirrors: Vec<String>,
    },
    /// Let installs of a published release download over a metered link (an urgent fix), or
    /// with --off not again.
    MeteredAllowed {
        /// The release's item.
        item: String,
        /// The release's version.
        version: String,
        /// Installs of it wait for an unmetered link again.
        #[arg(long)]
        off: bool,
    },
    /// Sign the release index of every item in a static release repository again, with a new
    /// expiry (run it before the index expires: devices refuse an expired index).
    Index {
        /// The repository directory.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        #[command(flatten)]
        index: IndexArgs,
    },
}

#[derive(Args)]
pub struct IndexArgs {
    /// Private release key that signs the repository's index (with --to-dir; repeatable).
    #[arg(long = "key")]
    pub key: Vec<PathBuf>,
    /// Days until devices refuse the index unless a fresher one is signed (at least 1).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..))]
    pub index_expires_in_days: u32,
}

#[derive(Args)]
pub struct BuildArgs {
    /// Software item name.
    #[arg(long)]
    pub item: String,
    /// Version (semver).
    #[arg(long)]
    pub version: semver::Version,
    /// Directory whose contents become the release.
    #[arg(
        long,
        required_unless_present = "artifact",
        conflicts_with = "artifact"
    )]
    pub from: Option<PathBuf>,
    /// An installer's bundle (a SWUpdate `.swu` or a RAUC `.raucb`) to release as it is, for
    /// devices that update through a hawkBit DDI client (docs/ddi.md) instead of --from.
    #[arg(long, value_name = "BUNDLE")]
    pub artifact: Option<PathBuf>,
    /// Private release key (from `ferryctl keygen`); repeat to sign with several keys.
    #[arg(long, required = true)]
    pub key: Vec<PathBuf>,
    /// Where to write the tarball and the signed manifest.
    #[arg(long)]
    pub out: PathBuf,
    /// What kind of update this is: security, bugfix, feature or unknown.
    #[arg(long, default_value = "unknown")]
    pub category: Category,
    /// How it is placed on the device: symlink (each version under ROOT/releases, ROOT/current
    /// points at one) or overlay (files placed into existing paths under ROOT, with backups).
    #[arg(long, default_value = "symlink")]
    pub layout: Layout,
    /// Compression of the tarball: gzip or zstd.
    #[arg(long, default_value = "gzip")]
    pub compression: ferry_manifests::manifest::Compression,
    /// Command to run after install, in the new release directory (repeatable, in order).
    #[arg(long = "post-install")]
    pub post_install: Vec<String>,
    /// Command that must exit 0 after post-install, or the install rolls back.
    #[arg(long)]
    pub health_check: Option<String>,
    /// A systemd unit this release runs (repeatable): during a campaign's observation window
    /// devices watch that it stays active and does not restart.
    #[arg(long = "unit")]
    pub units: Vec<String>,
    /// Days until devices refuse this manifest (at least 1).
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..))]
    pub expires_in_days: u32,
    /// Release notes.
    #[arg(long, default_value = "")]
    pub notes: String,
    /// Link to a changelog or release page.
    #[arg(long)]
    pub release_url: Option<String>,
    /// Device class this release is for (repeatable; none means any device).
    #[arg(long)]
    pub compatible: Vec<String>,
    /// Extra artifact URL (a mirror), tried before the server's own copy (repeatable).
    #[arg(long = "url")]
    pub urls: Vec<String>,
    /// Let devices that have a newer version install this one.
    #[arg(long)]
    pub allow_downgrade: bool,
    /// Mark files matching GLOB (relative to --from, e.g. `etc/*.conf`) as configuration a
    /// person may edit on the device: an edited one is kept on install and the new version
    /// is written beside it as FILE.ferry-new (repeatable).
    #[arg(long = "config-file", value_name = "GLOB")]
    pub config_files: Vec<String>,
}
