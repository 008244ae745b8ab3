use super::*;

#[test]
fn query_strings_are_decoded_and_bounded() {
    let query = ListQuery::parse(Some(
        "q=Shop%2D1+A&offset=100&limit=100000&source=docker&problems=1&host=a%3Cb&x=y",
    ));
    assert_eq!(query.q, "shop-1 a");
    assert_eq!(query.offset, 100);
    assert_eq!(query.limit, MAX_LIMIT);
    assert_eq!(query.source, "docker");
    assert!(query.problems);
    assert_eq!(query.host, "a<b");
}

#[test]
fn bad_numbers_and_escapes_take_defaults() {
    let query = ListQuery::parse(Some("offset=-1&limit=zero&q=%zz%4"));
    assert_eq!(query.offset, 0);
    assert_eq!(query.limit, DEFAULT_LIMIT);
    assert_eq!(query.q, "%zz%4");
    assert_eq!(ListQuery::parse(Some("limit=0")).limit, 1);
    assert_eq!(ListQuery::parse(None).limit, DEFAULT_LIMIT);
}

#[test]
fn route_names_point_at_their_objects() {
    assert_eq!(
        index::route_object("ingress/default/shop/r0/p1"),
        Some(("ingress".into(), "default".into(), "shop".into()))
    );
    assert_eq!(
        index::route_object("httproute/team/web/rules[0]"),
        Some(("httproute".into(), "team".into(), "web".into()))
    );
    assert_eq!(index::route_object("unrouted"), None);
}

#[test]
fn certificates_cover_their_names_and_one_level_of_wildcard() {
    let row = index::CertificateRow {
        listener: "http".into(),
        hosts: vec!["a.example".into(), "*.shop.example".into()],
        secret: "default/tls".into(),
        not_after: None,
    };
    assert!(row.covers("a.example"));
    assert!(row.covers("x.shop.example"));
    assert!(!row.covers("y.x.shop.example"));
    assert!(!row.covers("b.example"));
}
