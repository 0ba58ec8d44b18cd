//! TLS and mutual TLS of the reference SoFA over real TLS on loopback (REQ OPS-03), with
//! certificates the test makes: `tls_client_auth` (RFC 8705 §2) and certificate-bound access
//! tokens (§3), checked on every request.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair,
};
use reference_sofa::{Client, Config, Login, ReferenceSofa, RunningSofa, TlsConfig};
use serde_json::Value;
use sha2::{Digest, Sha256};

mod support;
use support::{TempDir, json, set_context, token};

/// The subject the EMR's client is registered with, as RFC 4514 writes it (last RDN first).
const EMR_DN: &str = "CN=emr.example.org,O=Example EMR";

/// A certificate authority that signs what the test needs.
struct Authority {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Authority {
    fn new(name: &str) -> Authority {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let pem = params.self_signed(&key).unwrap().pem();
        Authority {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// A leaf: its PEM certificate, PEM key and DER certificate.
    fn leaf(&self, names: &[&str], dn: &[(DnType, &str)], usage: ExtendedKeyUsagePurpose) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        // Without rcgen's default common name, so the order is the one given.
        params.distinguished_name = DistinguishedName::new();
        for (kind, value) in dn {
            params.distinguished_name.push(kind.clone(), *value);
        }
        params.extended_key_usages = vec![usage];
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            pem: certificate.pem(),
            key: key.serialize_pem(),
            der: certificate.der().to_vec(),
        }
    }
}

struct Leaf {
    pem: String,
    key: String,
    der: Vec<u8>,
}

impl Leaf {
    fn client(&self, roots: &Authority) -> reqwest::Client {
        let identity =
            reqwest::Identity::from_pem(format!("{}{}", self.pem, self.key).as_bytes()).unwrap();
        https(roots).identity(identity).build().unwrap()
    }

    /// `x5t#S256`: the base64url SHA-256 of the DER certificate.
    fn thumbprint(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(&self.der))
    }
}

/// A client that trusts only `roots` (the server's CA) and follows no redirect.
fn https(roots: &Authority) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(roots.pem.as_bytes()).unwrap()])
        .redirect(reqwest::redirect::Policy::none())
}

/// The PKI of a test: the server's CA and certificate, the CA of the EMRs' client
/// certificates, the EMR's certificate, another EMR's from the same CA, and one from a CA the
/// server does not trust.
struct Pki {
    server_ca: Authority,
    emr: Leaf,
    other_emr: Leaf,
    untrusted: Leaf,
    dir: TempDir,
}

fn pki(name: &str) -> (Pki, TlsConfig) {
    let server_ca = Authority::new("HALO test server CA");
    let server = server_ca.leaf(
        &["localhost", "127.0.0.1"],
        &[(DnType::CommonName, "sofa.test")],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let client_ca = Authority::new("HALO test EMR CA");
    let client = |cn: &str, org: &str| {
        client_ca.leaf(
            &[cn],
            &[(DnType::OrganizationName, org), (DnType::CommonName, cn)],
            ExtendedKeyUsagePurpose::ClientAuth,
        )
    };
    let emr = client("emr.example.org", "Example EMR");
    let other_emr = client("other-emr.example.org", "Other EMR");
    let untrusted = Authority::new("Somebody else's CA").leaf(
        &[],
        &[
            (DnType::OrganizationName, "Example EMR"),
            (DnType::CommonName, "emr.example.org"),
        ],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let dir = TempDir::new(name);
    let write = |file: &str, text: &str| {
        let path = dir.path().join(file);
        std::fs::write(&path, text).unwrap();
        path
    };
    let tls = TlsConfig {
        cert_file: write("server.pem", &server.pem),
        key_file: write("server-key.pem", &server.key),
        client_ca_file: Some(write("emr-ca.pem", &client_ca.pem)),
    };
    (
        Pki {
            server_ca,
            emr,
            other_emr,
            untrusted,
            dir,
        },
        tls,
    )
}

async fn start(pki: &Pki, tls: TlsConfig) -> RunningSofa {
    ReferenceSofa::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database: pki.dir.path().join("sofa.db"),
        tls: Some(tls),
        login: Login::AutoApprove {
            user: "dr-a".into(),
            fhir_user: None,
        },
        userless_launches: true,
        clients: vec![
            Client {
                secret: None,
                tls_client_auth_subject_dn: Some(EMR_DN.into()),
                ..Client::point_of_care("emr", "unused", SCOPES)
            },
            Client {
                secret: None,
                tls_client_auth_san_dns: Some("emr.example.org".into()),
                ..Client::point_of_care("emr-san", "unused", SCOPES)
            },
            Client::point_of_care("poc-secret", "poc-secret-0123456789", "Context.write"),
        ],
        development_mode: true,
        ..Config::default()
    })
    .await
    .unwrap()
}

const SCOPES: &str = "system/Subscription.rs Context.write";

const CLIENT_CREDENTIALS: [(&str, &str); 3] = [
    ("grant_type", "client_credentials"),
    ("client_id", "emr"),
    ("scope", SCOPES),
];

/// The EMR's search of its subscriptions with `token`: the status and the answer.
async fn subscriptions(client: &reqwest::Client, fhir_base: &str, token: &str) -> (u16, Value) {
    let response = client
        .get(format!("{fhir_base}/Subscription"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// The claims of a JWT, read without verification (the server checks the signature).
fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

// REQ: OPS-03
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registered_certificate_authenticates_the_emr_and_binds_its_token() {
    let (pki, tls) = pki("mtls-right");
    let sofa = start(&pki, tls).await;
    assert!(sofa.fhir_base.starts_with("https://"), "{}", sofa.fhir_base);
    let emr = pki.emr.client(&pki.server_ca);

    let (status, answer) = token(&emr, &sofa.fhir_base, &CLIENT_CREDENTIALS).await;
    assert_eq!(status, 200, "{answer}");
    let access = answer["access_token"].as_str().unwrap();
    assert_eq!(
        claims(access)["cnf"]["x5t#S256"],
        pki.emr.thumbprint().as_str()
    );
    let (status, answer) = subscriptions(&emr, &sofa.fhir_base, access).await;
    assert_eq!(
        (status, &answer["type"]),
        (200, &"searchset".into()),
        "{answer}"
    );

    // Registered by a dNSName SAN instead of the subject: the same certificate, not another.
    let by_san = [
        ("grant_type", "client_credentials"),
        ("client_id", "emr-san"),
    ];
    assert_eq!(token(&emr, &sofa.fhir_base, &by_san).await.0, 200);
    let other = pki.other_emr.client(&pki.server_ca);
    assert_eq!(token(&other, &sofa.fhir_base, &by_san).await.0, 401);

    // The discovery documents say so (RFC 8705 §2.3, §3.3); a client without a certificate
    // may still connect, for the clients that authenticate otherwise.
    let anonymous = https(&pki.server_ca).build().unwrap();
    for document in ["smart-configuration", "openid-configuration"] {
        let body = json(anonymous.get(format!("{}/.well-known/{document}", sofa.fhir_base))).await;
        let methods = body["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap();
        assert!(methods.contains(&"tls_client_auth".into()), "{body}");
        assert_eq!(body["tls_client_certificate_bound_access_tokens"], true);
    }
    sofa.shutdown().await;
}

// REQ: OPS-03
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_missing_or_untrusted_certificate_is_refused() {
    let (pki, tls) = pki("mtls-wrong");
    let sofa = start(&pki, tls).await;

    // Another EMR's certificate, from the trusted CA: not the registered subject.
    let other = pki.other_emr.client(&pki.server_ca);
    let (status, answer) = token(&other, &sofa.fhir_base, &CLIENT_CREDENTIALS).await;
    assert_eq!((status, &answer["error"]), (401, &"invalid_client".into()));
    // No certificate at all.
    let anonymous = https(&pki.server_ca).build().unwrap();
    let (status, answer) = token(&anonymous, &sofa.fhir_base, &CLIENT_CREDENTIALS).await;
    assert_eq!((status, &answer["error"]), (401, &"invalid_client".into()));
    // The registered subject, from a CA the server does not trust: the handshake fails.
    let untrusted = pki.untrusted.client(&pki.server_ca);
    let refused = untrusted
        .post(format!("{}/auth/token", sofa.fhir_base))
        .form(&CLIENT_CREDENTIALS)
        .send()
        .await;
    assert!(refused.is_err(), "{refused:?}");

    // A secret client is unaffected by the certificate it does not present.
    let (status, answer) = token(
        &anonymous,
        &sofa.fhir_base,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "poc-secret"),
            ("client_secret", "poc-secret-0123456789"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(claims(answer["access_token"].as_str().unwrap())["cnf"].is_null());
    sofa.shutdown().await;
}

// REQ: OPS-03
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_token_without_its_certificate_is_refused_on_every_request() {
    let (pki, tls) = pki("mtls-bound");
    let sofa = start(&pki, tls).await;
    let emr = pki.emr.client(&pki.server_ca);
    let (status, answer) = token(&emr, &sofa.fhir_base, &CLIENT_CREDENTIALS).await;
    assert_eq!(status, 200, "{answer}");
    let access = answer["access_token"].as_str().unwrap();

    let anonymous = https(&pki.server_ca).build().unwrap();
    let other = pki.other_emr.client(&pki.server_ca);
    for (who, client) in [("no certificate", &anonymous), ("another one", &other)] {
        let (status, answer) = subscriptions(client, &sofa.fhir_base, access).await;
        assert_eq!(status, 401, "{who}: {answer}");
        assert_eq!(answer["resourceType"], "OperationOutcome", "{who}");
        // Every route that takes a token, the context operations too.
        let (status, answer) = set_context(client, &sofa.fhir_base, access).await;
        assert_eq!(status, 401, "{who}: {answer}");
        // The scheme in another case is the same token to the validator, so to the check.
        let lower = client
            .get(format!("{}/Subscription", sofa.fhir_base))
            .header("authorization", format!("bearer {access}"))
            .send()
            .await
            .unwrap();
        assert_eq!(lower.status().as_u16(), 401, "{who}");
    }
    // Introspection tells a resource server the binding to check (RFC 8705 §3.2).
    let introspection = json(
        anonymous
            .post(format!("{}/auth/introspect", sofa.fhir_base))
            .basic_auth("poc-secret", Some("poc-secret-0123456789"))
            .form(&[("token", access)]),
    )
    .await;
    assert_eq!(introspection["active"], true, "{introspection}");
    assert_eq!(
        introspection["cnf"]["x5t#S256"],
        pki.emr.thumbprint().as_str()
    );
    // With its certificate, still accepted after the refusals, whatever the scheme's case.
    let (status, answer) = subscriptions(&emr, &sofa.fhir_base, access).await;
    assert_eq!(status, 200, "{answer}");
    let lower = emr
        .get(format!("{}/Subscription", sofa.fhir_base))
        .header("authorization", format!("bearer {access}"))
        .send()
        .await
        .unwrap();
    assert_eq!(lower.status().as_u16(), 200);
    sofa.shutdown().await;
}

// REQ: OPS-03
#[tokio::test]
async fn without_a_client_ca_mutual_tls_is_neither_offered_nor_configurable() {
    let (pki, mut tls) = pki("mtls-no-ca");
    tls.client_ca_file = None;
    // Outside development mode the signing keys are sealed under a key-encryption key.
    let kek = pki.dir.path().join("kek");
    std::fs::write(&kek, "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n").unwrap();
    let config = |clients: Vec<Client>| Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database: reference_sofa::IN_MEMORY.into(),
        tls: Some(tls.clone()),
        key_encryption_key_file: Some(kek.clone()),
        login: Login::AutoApprove {
            user: "dr-a".into(),
            fhir_user: None,
        },
        clients,
        ..Config::default()
    };
    let error = ReferenceSofa::start(config(vec![Client {
        secret: None,
        tls_client_auth_subject_dn: Some(EMR_DN.into()),
        ..Client::point_of_care("emr", "unused", SCOPES)
    }]))
    .await
    .unwrap_err();
    assert!(error.to_string().contains("client_ca_file"), "{error}");

    // TLS alone: HTTPS, and the discovery document offers no certificate authentication.
    let sofa = ReferenceSofa::start(config(Vec::new())).await.unwrap();
    let anonymous = https(&pki.server_ca).build().unwrap();
    let body = json(anonymous.get(format!(
        "{}/.well-known/smart-configuration",
        sofa.fhir_base
    )))
    .await;
    let methods = body["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap();
    assert!(!methods.contains(&"tls_client_auth".into()), "{body}");
    assert!(body["tls_client_certificate_bound_access_tokens"].is_null());
    // A client certificate is not asked for, so not taken.
    let emr = pki.emr.client(&pki.server_ca);
    let (status, answer) = token(&emr, &sofa.fhir_base, &CLIENT_CREDENTIALS).await;
    assert_eq!(status, 401, "{answer}");
    sofa.shutdown().await;
}
