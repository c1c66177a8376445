//! A real Mosquitto broker for the MQTT bridge's tests, started on a free loopback port
//! without persistence, and a client that watches topics and keeps each one's last payload.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

use super::free_port;

/// A Mosquitto broker for one test, on 127.0.0.1, without persistence.
pub struct Broker {
    child: Option<Child>,
    pub(crate) port: u16,
    config: PathBuf,
}

impl Broker {
    pub fn start(dir: &Path) -> Broker {
        Broker::start_with(dir, "")
    }

    /// With `listener_extra` lines after the listener (TLS settings).
    pub fn start_with(dir: &Path, listener_extra: &str) -> Broker {
        let port = free_port();
        let config = dir.join("mosquitto.conf");
        fs::write(
            &config,
            format!(
                // `user root`: when the tests run as root, mosquitto would otherwise drop to
                // its own user, who cannot read the test's private files.
                "user root\nlistener {port} 127.0.0.1\n{listener_extra}{anonymous}persistence false\n",
                anonymous = if listener_extra.contains("password_file") {
                    "allow_anonymous false\n"
                } else {
                    "allow_anonymous true\n"
                }
            ),
        )
        .unwrap();
        let mut b = Broker {
            child: None,
            port,
            config,
        };
        b.launch();
        b
    }

    fn launch(&mut self) {
        let child = Command::new(mosquitto())
            .arg("-c")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto (the test command installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn mosquitto() -> &'static str {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("mosquitto is not installed (apt-get install mosquitto)")
}

/// Watches every topic under the prefixes and keeps the last payload of each.
pub struct Watcher {
    seen: Arc<Mutex<BTreeMap<String, String>>>,
    pub(crate) client: Client,
}

impl Watcher {
    pub fn start(port: u16, name: &str) -> Watcher {
        let mut o = MqttOptions::new(name, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(5));
        o.set_max_packet_size(1024 * 1024, 1024 * 1024);
        let (client, mut connection) = Client::new(o, 100);
        client.subscribe("ferry/#", QoS::AtLeastOnce).unwrap();
        client
            .subscribe("homeassistant/#", QoS::AtLeastOnce)
            .unwrap();
        let seen = Arc::new(Mutex::new(BTreeMap::new()));
        let store = Arc::clone(&seen);
        std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        store.lock().unwrap().insert(
                            p.topic.clone(),
                            String::from_utf8_lossy(&p.payload).into_owned(),
                        );
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        });
        Watcher { seen, client }
    }

    pub fn get(&self, topic: &str) -> Option<String> {
        self.seen.lock().unwrap().get(topic).cloned()
    }

    /// Waits (bounded) until `topic` carries `payload`.
    pub fn wait_for(&self, topic: &str, payload: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.get(topic).as_deref() != Some(payload) {
            assert!(
                Instant::now() < deadline,
                "{topic} never became {payload:?}; it is {:?}; seen: {:#?}",
                self.get(topic),
                self.seen.lock().unwrap().keys().collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (bounded) until `topic` has a non-empty payload, and returns it as JSON.
    pub fn json(&self, topic: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.get(topic).unwrap_or_default().is_empty() {
            assert!(Instant::now() < deadline, "{topic} never arrived");
            std::thread::sleep(Duration::from_millis(50));
        }
        serde_json::from_str(&self.get(topic).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{topic} is not JSON: {e}"))
    }
}
