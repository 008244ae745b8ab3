//! A client certificate as nginx hands it to backends: its subject and issuer as RFC 2253
//! strings (`CN=client,O=Example,C=DE`: the last RDN first, `,` between RDNs, `+` within one,
//! special characters escaped), and the certificate as URL-encoded PEM.

use base64::Engine;
use rustls::pki_types::CertificateDer;
use x509_parser::x509::X509Name;

/// Short names OpenSSL prints in RFC 2253 form; other attributes are written as their OID.
const SHORT_NAMES: [(&str, &str); 11] = [
    ("2.5.4.3", "CN"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.9", "street"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.5", "serialNumber"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("0.9.2342.19200300.100.1.1", "UID"),
    ("1.2.840.113549.1.9.1", "emailAddress"),
];

/// The subject and issuer DNs of a certificate; `None` when it does not parse.
pub(crate) fn subject_and_issuer(der: &CertificateDer<'_>) -> Option<(String, String)> {
    let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    Some((rfc2253(parsed.subject()), rfc2253(parsed.issuer())))
}

fn rfc2253(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|attribute| {
                    let oid = attribute.attr_type().to_id_string();
                    let short = SHORT_NAMES
                        .iter()
                        .find(|(id, _)| *id == oid)
                        .map_or(oid.as_str(), |(_, short)| short);
                    let value = match attribute.as_str() {
                        Ok(text) => escape(text),
                        Err(_) => format!("#{}", hex(attribute.attr_value().data)),
                    };
                    format!("{short}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// RFC 2253 §2.4: `,`, `+`, `"`, `\`, `<`, `>`, `;` escaped, as are a leading `#` or space and
/// a trailing space; control characters as `\XX`.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (index, c) in value.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => {
                out.push('\\');
                out.push(c);
            }
            '#' if index == 0 => out.push_str("\\#"),
            ' ' if index == 0 || index == last => out.push_str("\\ "),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for byte in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\{byte:02X}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The certificate as PEM (64-character lines), URL-encoded as nginx's
/// `$ssl_client_escaped_cert`: every byte but letters, digits and `-._~` as `%XX`.
pub(crate) fn escaped_pem(der: &CertificateDer<'_>) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    let mut out = String::with_capacity(pem.len() * 3 / 2);
    for byte in pem.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn distinguished_names_are_written_last_rdn_first_with_escapes() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "DE");
        dn.push(rcgen::DnType::OrganizationName, "Example, Inc");
        dn.push(rcgen::DnType::CommonName, "#client 1 ");
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (subject, issuer) = subject_and_issuer(cert.der()).unwrap();
        assert_eq!(subject, r"CN=\#client 1\ ,O=Example\, Inc,C=DE");
        assert_eq!(issuer, subject, "self-signed");
    }

    #[test]
    fn pem_is_url_encoded_as_nginx_escapes_it() {
        let der = CertificateDer::from(vec![0xfbu8; 60]);
        let escaped = escaped_pem(&der);
        assert!(escaped.starts_with("-----BEGIN%20CERTIFICATE-----%0A"), "{escaped}");
        assert!(escaped.ends_with("%0A-----END%20CERTIFICATE-----%0A"), "{escaped}");
        assert!(escaped.contains("%2B%2F") || escaped.contains("%2F"), "{escaped}");
        assert!(!escaped.contains(['\n', ' ', '+', '/', '=']), "{escaped}");
    }
}
