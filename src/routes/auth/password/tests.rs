//! Known vectors: generated with `openssl passwd -apr1/-1/-5/-6 -salt …` and `openssl dgst
//! -sha1 | base64`; bcrypt from OpenBSD's test vectors (the same hash under each prefix).

use super::*;

const BCRYPT_U_U: &str = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";

fn check(hash: &str, password: &str, format: &str) {
    let parsed = PasswordHash::parse(hash).unwrap_or_else(|err| panic!("{hash}: {err}"));
    assert_eq!(parsed.format(), format);
    assert!(parsed.verify(password.as_bytes()), "{hash} should accept {password:?}");
    assert!(!parsed.verify(b"wrong"), "{hash} must refuse a wrong password");
    assert!(!parsed.verify(b""), "{hash} must refuse the empty password");
    let mut longer = password.to_string();
    longer.push('x');
    assert!(
        !parsed.verify(longer.as_bytes()),
        "{hash} must refuse a longer password"
    );
}

#[test]
fn bcrypt_under_each_prefix() {
    for prefix in ["$2a$", "$2b$", "$2y$"] {
        let hash = BCRYPT_U_U.replacen("$2a$", prefix, 1);
        check(&hash, "U*U", "bcrypt");
    }
    assert!(PasswordHash::parse(BCRYPT_U_U).unwrap().is_slow());
}

#[test]
fn bcrypt_fresh_hashes_of_each_version() {
    for version in [bcrypt::Version::TwoA, bcrypt::Version::TwoB, bcrypt::Version::TwoY] {
        let hash = bcrypt::hash_with_result("correct horse", 4)
            .unwrap()
            .format_for_version(version);
        check(&hash, "correct horse", "bcrypt");
    }
}

#[test]
fn apache_md5() {
    check("$apr1$saltsalt$HIDXe7D36X22w1CH4M1cQ.", "open sesame", "apr1");
    check(
        "$apr1$12345678$GGYYIHVpC9Y2ABJ/m7BXN1",
        "a-very-long-password-over-16-bytes",
        "apr1",
    );
    let empty = PasswordHash::parse("$apr1$x$tMwYqBfQwi3FYAr0aJc8M/").unwrap();
    assert!(empty.verify(b""));
    assert!(!empty.verify(b"x"));
    assert!(!empty.is_slow());
}

#[test]
fn md5_crypt() {
    check("$1$abc$n6H250boi0sp0yw9RWhqY0", "open sesame", "md5-crypt");
}

#[test]
fn sha1() {
    check("{SHA}W8r/fyL/UzygmbNAjq2HbA67qac=", "open sesame", "sha1");
}

#[test]
fn sha_crypt() {
    check(
        "$5$somesalt$6XwqLSgSLhGSGin7fH1LqkWScZmeI37F5I2aPSIE7KA",
        "open sesame",
        "sha256-crypt",
    );
    check(
        "$6$somesalt$24emLLWMBttd4Vr65bzEmlKcIbbG/U3.Ld4DjG.HYfhQD2VvlUzzvJtTyu40lB0PF2rjSl08Wl7.741Zlz9Kr0",
        "open sesame",
        "sha512-crypt",
    );
}

#[test]
fn plain_text_des_and_broken_hashes_are_refused_without_echoing_them() {
    for (hash, says) in [
        ("open sesame", "plain text"),
        ("abJnggxhB/yWI", "DES crypt"),
        ("$2y$10$short", "bcrypt"),
        ("$2y$99$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "bcrypt"),
        ("$apr1$saltsalt$tooshort", "MD5"),
        ("$apr1$$HIDXe7D36X22w1CH4M1cQ.", "MD5"),
        ("{SHA}notbase64!", "{SHA}"),
        ("{SHA}AAAA", "{SHA}"),
        ("$6$onlysalt", "SHA-crypt"),
        ("", "plain text"),
    ] {
        let err = PasswordHash::parse(hash).unwrap_err();
        assert!(err.contains(says), "{hash:?}: {err}");
        if !hash.is_empty() {
            assert!(!err.contains(hash), "the error repeats the hash: {err}");
        }
    }
}

#[test]
fn debug_never_prints_the_hash() {
    let hash = PasswordHash::parse("{SHA}W8r/fyL/UzygmbNAjq2HbA67qac=").unwrap();
    assert_eq!(format!("{hash:?}"), "PasswordHash(sha1)");
}
