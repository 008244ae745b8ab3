use super::*;

#[test]
fn targets_parse_into_scheme_host_port_and_template() {
    let url = parse_mirror_target("http://pricing-shadow.shop.svc.cluster.local$request_uri").unwrap();
    assert!(!url.https);
    assert_eq!(url.host, "pricing-shadow.shop.svc.cluster.local");
    assert_eq!(url.port, 80);
    assert_eq!(url.service(), Some(("pricing-shadow", "shop")));
    assert_eq!(url.path.target("/a?b=1", "/rewritten"), "/a?b=1");

    let url = parse_mirror_target("https://Mirror.Example:8443/copy$request_uri").unwrap();
    assert!(url.https);
    assert_eq!((url.host.as_str(), url.port), ("mirror.example", 8443));
    assert_eq!(url.authority, "Mirror.Example:8443");
    assert_eq!(url.service(), None);
    assert_eq!(url.path.target("/a", "/a"), "/copy/a");

    let url = parse_mirror_target("https://10.0.0.7").unwrap();
    assert_eq!((url.host.as_str(), url.port), ("10.0.0.7", 443));
    assert_eq!(url.path.target("/a", "/a"), "/", "no path, no $request_uri: /");

    let url = parse_mirror_target("http://[2001:db8::1]:81/fixed?x=1").unwrap();
    assert_eq!((url.host.as_str(), url.port), ("2001:db8::1", 81));
    assert_eq!(url.path.target("/a", "/a"), "/fixed?x=1");
    assert_eq!(
        parse_mirror_target("http://web.shop.svc:8080/").unwrap().service(),
        Some(("web", "shop"))
    );
}

#[test]
fn bad_targets_say_why() {
    for (text, expected) in [
        ("ftp://x/", "is not an http:// or https:// URL"),
        ("mirror.example/x", "is not an http:// or https:// URL"),
        ("http://user:pw@mirror.example/", "user information"),
        ("http://mirror.example:99999/", "is not a host[:port]"),
        ("http://mirror.example:0/", "1-65535"),
        ("http:///path", "is not a host[:port]"),
        ("http://m$host", "only nginx variable"),
        ("http://m$request_uri$request_uri", "only nginx variable"),
        ("http://m/a\nb", "control characters"),
        ("http://m/a b", "control characters"),
        ("http://m/#frag", "fragment"),
        ("http://m/{x}", "is not a URI path"),
    ] {
        match parse_mirror_target(text) {
            Ok(url) => panic!("{text:?} parsed as {url:?}"),
            Err(message) => assert!(message.contains(expected), "{text:?}: {message}"),
        }
    }
}
