//! HTTPS without a proxy: ferry-server with --tls-cert/--tls-key; the agent pins the CA that
//! signed the server's certificate (`server_ca`), and ferryctl takes --ca-cert.

use std::fs;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{bin, run, Device};

#[test]
fn the_agent_talks_https_to_a_server_signed_by_its_pinned_ca_and_refuses_others() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    crate::util::certs::issue(d);
    // Another CA the agent must not trust.
    let other = d.join("other-ca");
    fs::create_dir_all(&other).unwrap();
    crate::util::certs::issue(&other);
    fs::copy(other.join("ca.pem"), d.join("other.pem")).unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = Command::new(bin("ferry-server"))
        .args(["--listen", &addr, "--data-dir"])
        .arg(d.join("data"))
        .arg("--tls-cert")
        .arg(d.join("server.pem"))
        .arg("--tls-key")
        .arg(d.join("server.key"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(&addr).is_err() || !d.join("data/enrol.token").exists() {
        assert!(Instant::now() < deadline, "the HTTPS server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    let key = ferry_manifests::SigningKeyFile::from_seed([5; 32]);
    fs::write(d.join("release.pub"), key.public().to_file_string()).unwrap();
    let config = |ca: &str| {
        format!(
            "server_url = \"https://{addr}\"\nenrol_token_file = \"data/enrol.token\"\nstate_dir = \"state-{ca}\"\ntrusted_keys = [\"release.pub\"]\nserver_ca = \"{ca}.pem\"\nhostname = \"tls-{ca}\"\ndownload_retries = 0\n\n[[items]]\nname = \"web\"\nroot = \"{}\"\n",
            d.join("root").display()
        )
    };
    fs::write(d.join("good.toml"), config("ca")).unwrap();
    fs::write(d.join("bad.toml"), config("other")).unwrap();
    let agent = |name: &str| Device {
        name: name.to_string(),
        cfg: d.join(format!("{name}.toml")),
        root: d.join("root"),
    };
    let good = agent("good").run("check");
    let bad = agent("bad").run("check");
    let mut ctl = Command::new(bin("ferryctl"));
    ctl.args([
        "hosts",
        "list",
        "--json",
        "--server",
        &format!("https://{addr}"),
    ])
    .arg("--ca-cert")
    .arg(d.join("ca.pem"))
    .env(
        "FERRY_TOKEN",
        format!("@{}", d.join("data/operator.token").display()),
    );
    let ctl = run(ctl);
    let _ = server.kill();
    let _ = server.wait();

    good.ok();
    let bad = bad.code(3);
    assert!(
        bad.stderr.to_lowercase().contains("certificate"),
        "an unpinned CA was refused without saying why:\n{bad}"
    );
    let ctl = ctl.ok();
    let hosts: serde_json::Value = serde_json::from_str(&ctl.stdout).unwrap();
    assert_eq!(hosts.as_array().unwrap().len(), 1);
    assert_eq!(hosts[0]["hostname"], "tls-ca");
}
