use super::with_offered_mirrors;

#[test]
fn offered_mirrors_come_after_the_signed_absolute_urls_and_before_the_servers_copy() {
    let urls = [
        "https://signed.example/web.tar.gz".to_string(),
        "web.tar.gz".to_string(),
    ];
    let offered = [
        "http://127.0.0.1:9000/web.tar.gz".to_string(),
        "https://signed.example/web.tar.gz".to_string(),
        "file:///etc/shadow".to_string(),
    ];
    assert_eq!(
        with_offered_mirrors(&urls, &offered),
        [
            "https://signed.example/web.tar.gz",
            "http://127.0.0.1:9000/web.tar.gz",
            "web.tar.gz"
        ]
    );
    assert_eq!(with_offered_mirrors(&urls, &[]), urls);
}
