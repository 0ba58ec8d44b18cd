//! What is sent: the setup every server gets (PoC tokens, rest-hook subscriptions, launches,
//! app tokens) and one operation of each measure, as a PoC and an app send them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::server::{APP_REDIRECT, APP_SCOPES, EMRS, POC_SECRET, Server};

/// The XL third-party `$set-context` request (seven entries) as the server's own criterion
/// bench sends it: compact JSON, with the one entry D-04 refuses (`request.url` `Location` on
/// a MedicationStatement) corrected, so every request is a full success.
pub(crate) fn xl_request() -> Result<Vec<u8>, String> {
    const FIXTURE: &[u8] =
        include_bytes!("../../../fixtures/halo/third-party-zedwerks/set-context-input-XL.json");
    let mut body: Value = serde_json::from_slice(FIXTURE).map_err(|e| e.to_string())?;
    let url = body
        .pointer_mut("/parameter/11/resource/entry/6/request/url")
        .ok_or("the XL fixture changed shape")?;
    *url = json!("MedicationStatement");
    serde_json::to_vec(&body).map_err(|e| e.to_string())
}

/// One EMR: its PoC token, the app's token in the EMR's launch and the launch patient.
pub(crate) struct Emr {
    pub(crate) poc_token: String,
    pub(crate) app_token: String,
    pub(crate) patient_url: String,
    /// Notifications its rest-hook receiver acknowledged.
    pub(crate) received: Arc<AtomicU64>,
}

/// A server ready to be measured: a reference SoFA this tool started (every measure), or a
/// peer SMART server started by someone else (the token exchange and the read).
pub(crate) struct Target {
    pub(crate) label: String,
    /// The process whose CPU time is read, when known.
    pub(crate) pid: Option<u32>,
    /// The SoFA process, stopped when the target is dropped; `None` for a peer.
    pub(crate) server: Option<Server>,
    pub(crate) http: reqwest::Client,
    /// The EMRs of a SoFA; none for a peer.
    pub(crate) emrs: Vec<Emr>,
    pub(crate) xl: Arc<Vec<u8>>,
    /// The token exchange measured (in EMR 0's launch on a SoFA).
    pub(crate) exchange: Exchange,
    /// The launch patient's URL and the app token reading it.
    pub(crate) read: (String, String),
}

/// An HTTP/1.1 client keeping up to `connections` connections alive, following no redirect
/// (the authorization code is read from the `Location`).
pub(crate) fn client(connections: usize) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(connections)
        .pool_idle_timeout(Duration::from_secs(300))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| e.to_string())
}

/// A rest-hook endpoint acknowledging every notification with 200, counting them.
async fn receiver() -> Result<(String, Arc<AtomicU64>), String> {
    let received = Arc::new(AtomicU64::new(0));
    let count = received.clone();
    let app = axum::Router::new().route(
        "/notify",
        axum::routing::post(move || {
            let count = count.clone();
            async move {
                count.fetch_add(1, Ordering::Relaxed);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let url = format!(
        "http://{}/notify",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, received))
}

/// Sends a request; its status and JSON answer (`Null` when the body is not JSON).
async fn send(request: reqwest::RequestBuilder) -> Result<(u16, Value), String> {
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

fn expect(status: u16, wanted: u16, what: &str, body: &Value) -> Result<(), String> {
    if status == wanted {
        Ok(())
    } else {
        let text = body.to_string();
        Err(format!(
            "{what}: {status} {}",
            text.chars().take(200).collect::<String>()
        ))
    }
}

/// A PoC's `client_credentials` token.
async fn poc_token(http: &reqwest::Client, base: &str, poc: &str) -> Result<String, String> {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", poc),
        ("client_secret", POC_SECRET),
    ];
    let (status, answer) = send(http.post(format!("{base}/auth/token")).form(&form)).await?;
    expect(status, 200, "client_credentials", &answer)?;
    answer["access_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "no access_token".into())
}

/// The PoC's rest-hook Subscription to its content updates at `endpoint`, once active.
async fn subscribe(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    endpoint: &str,
) -> Result<(), String> {
    let subscription = json!({
        "resourceType": "Subscription",
        "meta": {"profile": ["http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription"]},
        "status": "requested",
        "reason": "EMR content updates",
        "criteria": "http://fhir.infoway-inforoute.ca/io/HALO/SubscriptionTopic/sofa-content-update",
        "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json",
            "_payload": {"extension": [{
                "url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content",
                "valueCode": "id-only"
            }]}}
    });
    let (status, created) = send(
        http.post(format!("{base}/Subscription"))
            .bearer_auth(token)
            .header("content-type", "application/fhir+json")
            .body(subscription.to_string()),
    )
    .await?;
    expect(status, 201, "Subscription", &created)?;
    let id = created["id"].as_str().ok_or("no Subscription id")?;
    for _ in 0..500 {
        let (_, current) = send(
            http.get(format!("{base}/Subscription/{id}"))
                .bearer_auth(token),
        )
        .await?;
        if current["status"] == "active" {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(format!("Subscription/{id} never became active"))
}

/// `$set-context` with one new Patient: the launch id.
async fn small_launch(http: &reqwest::Client, base: &str, token: &str) -> Result<String, String> {
    let patient = "urn:uuid:9d4c6b43-2c4f-4d8b-9a3e-1c0e6a7b8c9d";
    let body = json!({"resourceType": "Parameters", "parameter": [
        {"name": "patient", "valueReference": {"reference": patient}},
        {"name": "resources", "resource": {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": patient, "resource": {"resourceType": "Patient", "gender": "male",
                "name": [{"family": "Load", "given": ["Test"]}], "birthDate": "1970-01-01"},
             "request": {"method": "POST", "url": "Patient"}}]}}
    ]});
    let (status, answer) = send(
        http.post(format!("{base}/$set-context"))
            .bearer_auth(token)
            .header("content-type", "application/fhir+json")
            .body(body.to_string()),
    )
    .await?;
    expect(status, 200, "$set-context", &answer)?;
    answer["parameter"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "launchID"))
        .and_then(|p| p["valueString"].as_str())
        .map(str::to_string)
        .ok_or_else(|| "no launchID".into())
}

/// A PKCE verifier (32 random bytes, base64url) and its S256 challenge.
fn pkce() -> Result<(String, String), String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| e.to_string())?;
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    Ok((verifier, challenge))
}

/// Where and how an app is launched: the authorization server's endpoints, the FHIR base
/// named as `aud`, and the `launch` value the EHR handed the app.
#[derive(Debug, Clone)]
pub(crate) struct Exchange {
    pub(crate) authorize_url: String,
    pub(crate) token_url: String,
    pub(crate) aud: String,
    pub(crate) launch: String,
}

/// The EHR launch of the public app: authorize (signed in without a page, answered with a
/// redirect carrying the code) then the code exchange with the PKCE verifier. The token answer,
/// which must hold an access token and an id_token.
pub(crate) async fn token_exchange(
    http: &reqwest::Client,
    exchange: &Exchange,
) -> Result<Value, String> {
    let (verifier, challenge) = pkce()?;
    let authorize = reqwest::Url::parse_with_params(
        &exchange.authorize_url,
        &[
            ("response_type", "code"),
            ("client_id", "app"),
            ("redirect_uri", APP_REDIRECT),
            ("launch", exchange.launch.as_str()),
            ("scope", APP_SCOPES),
            ("state", "load"),
            ("aud", exchange.aud.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
    )
    .map_err(|e| e.to_string())?;
    let response = http
        .get(authorize)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .map(str::to_string);
    // Read the (empty) body so the connection goes back to the pool.
    let _ = response.bytes().await;
    let location = location.ok_or_else(|| format!("authorize: {status} without a Location"))?;
    let code = reqwest::Url::parse(&location)
        .map_err(|e| e.to_string())?
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| format!("authorize: no code in {location}"))?;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", APP_REDIRECT),
        ("client_id", "app"),
        ("code_verifier", verifier.as_str()),
    ];
    let (status, answer) = send(http.post(&exchange.token_url).form(&form)).await?;
    expect(status, 200, "token", &answer)?;
    if answer["access_token"].is_string() && answer["id_token"].is_string() {
        Ok(answer)
    } else {
        Err("token: no access_token or id_token".into())
    }
}

/// The measure is of an RS256 id_token (the floor is `openssl speed rsa2048`): its header says
/// so, or the setup stops.
fn id_token_alg_is_rs256(answer: &Value) -> Result<(), String> {
    let header = answer["id_token"]
        .as_str()
        .and_then(|t| t.split('.').next())
        .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
        .and_then(|h| serde_json::from_slice::<Value>(&h).ok())
        .ok_or("the id_token has no readable header")?;
    if header["alg"] == "RS256" {
        Ok(())
    } else {
        Err(format!(
            "the id_token is signed with {}, not RS256",
            header["alg"]
        ))
    }
}

impl Target {
    /// Prepares `server`: for every EMR a PoC token, an active rest-hook Subscription to a
    /// receiver run here, a launch with one Patient, and the app's token in it.
    pub(crate) async fn prepare(server: Server, connections: usize) -> Result<Target, String> {
        let http = client(connections)?;
        let base = server.fhir_base.clone();
        let mut emrs = Vec::with_capacity(EMRS);
        let mut first = None;
        for i in 0..EMRS {
            let poc_token = poc_token(&http, &base, &format!("poc-{i}")).await?;
            let (endpoint, received) = receiver().await?;
            subscribe(&http, &base, &poc_token, &endpoint).await?;
            let exchange = Exchange {
                authorize_url: format!("{base}/auth/authorize"),
                token_url: format!("{base}/auth/token"),
                aud: base.clone(),
                launch: small_launch(&http, &base, &poc_token).await?,
            };
            let answer = token_exchange(&http, &exchange).await?;
            id_token_alg_is_rs256(&answer)?;
            let app_token = answer["access_token"]
                .as_str()
                .ok_or("no access_token")?
                .to_string();
            let patient = answer["patient"]
                .as_str()
                .ok_or("no patient in the token")?;
            emrs.push(Emr {
                poc_token,
                app_token,
                patient_url: format!("{base}/Patient/{patient}"),
                received,
            });
            first.get_or_insert(exchange);
        }
        let exchange = first.ok_or("no EMR")?;
        let read = (emrs[0].patient_url.clone(), emrs[0].app_token.clone());
        Ok(Target {
            label: server.label.clone(),
            pid: Some(server.pid()),
            server: Some(server),
            http,
            emrs,
            xl: Arc::new(xl_request()?),
            exchange,
            read,
        })
    }

    /// A peer SMART server already running at `fhir_base`: its endpoints from its
    /// `.well-known/smart-configuration`, one exchange with `launch` to check it answers with
    /// an RS256 id_token and to take the access token and patient the read uses.
    pub(crate) async fn peer(
        label: &str,
        fhir_base: &str,
        launch: &str,
        pid: Option<u32>,
        connections: usize,
    ) -> Result<Target, String> {
        let http = client(connections)?;
        let base = fhir_base.trim_end_matches('/').to_string();
        let (status, configuration) =
            send(http.get(format!("{base}/.well-known/smart-configuration"))).await?;
        expect(status, 200, "smart-configuration", &configuration)?;
        let endpoint = |name: &str| {
            configuration[name]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("smart-configuration without {name}"))
        };
        let exchange = Exchange {
            authorize_url: endpoint("authorization_endpoint")?,
            token_url: endpoint("token_endpoint")?,
            aud: base.clone(),
            launch: launch.to_string(),
        };
        let answer = token_exchange(&http, &exchange).await?;
        id_token_alg_is_rs256(&answer)?;
        let token = answer["access_token"].as_str().ok_or("no access_token")?;
        let patient = answer["patient"]
            .as_str()
            .ok_or("no patient in the token")?;
        Ok(Target {
            label: label.to_string(),
            pid,
            server: None,
            http,
            emrs: Vec::new(),
            xl: Arc::new(Vec::new()),
            exchange,
            read: (format!("{base}/Patient/{patient}"), token.to_string()),
        })
    }

    /// Whether `measure` applies: a peer has no `$set-context` and no EMR subscriptions.
    pub(crate) fn supports(&self, measure: Measure) -> bool {
        self.server.is_some() || matches!(measure, Measure::Token | Measure::Read)
    }
}

/// The measures, each one kind of operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Measure {
    /// `POST $set-context` with the XL request, by EMR 0's PoC.
    SetContext,
    /// Authorize plus code exchange (PKCE, RS256 id_token, refresh token) in EMR 0's launch.
    Token,
    /// The app's `POST Observation` in its launch: delivered to the EMR's rest-hook before it
    /// commits, answered 201. Worker `w` writes in EMR `w % emrs`'s launch.
    Write {
        /// How many EMRs the workers spread over.
        emrs: usize,
    },
    /// `GET Patient/{id}` of the launch patient with the app's token.
    Read,
}

impl Measure {
    /// The table title.
    pub(crate) fn title(self) -> String {
        match self {
            Measure::SetContext => {
                "`$set-context`, XL third-party request (7 entries), one PoC".to_string()
            }
            Measure::Token => {
                "Token exchange: authorize + token (PKCE S256, RS256 id_token, refresh token)"
                    .to_string()
            }
            Measure::Write { emrs: 1 } => {
                "App write → rest-hook delivery to the EMR → commit → 201, one EMR".to_string()
            }
            Measure::Write { emrs } => format!(
                "App write → rest-hook delivery → commit → 201, {emrs} EMRs (each its own PoC, subscription, receiver and launch)"
            ),
            Measure::Read => "FHIR read of the launch Patient (app token)".to_string(),
        }
    }
}

/// A cheap, cloneable handle to what an operation needs.
#[derive(Clone)]
pub(crate) struct OpContext {
    http: reqwest::Client,
    xl: Arc<Vec<u8>>,
    set_context_url: Arc<str>,
    write_url: Arc<str>,
    /// Per EMR: the PoC token, the app token, the launch patient's reference.
    emrs: Arc<Vec<(String, String, String)>>,
    exchange: Arc<Exchange>,
    read: Arc<(String, String)>,
}

impl OpContext {
    pub(crate) fn new(target: &Target) -> OpContext {
        let base = target
            .server
            .as_ref()
            .map(|s| s.fhir_base.clone())
            .unwrap_or_default();
        OpContext {
            http: target.http.clone(),
            xl: target.xl.clone(),
            set_context_url: format!("{base}/$set-context").into(),
            write_url: format!("{base}/Observation").into(),
            emrs: Arc::new(
                target
                    .emrs
                    .iter()
                    .map(|e| {
                        let patient = e.patient_url.rsplit('/').next().unwrap_or_default();
                        (
                            e.poc_token.clone(),
                            e.app_token.clone(),
                            format!("Patient/{patient}"),
                        )
                    })
                    .collect(),
            ),
            exchange: Arc::new(target.exchange.clone()),
            read: Arc::new(target.read.clone()),
        }
    }

    /// One operation of `measure` by worker `worker`.
    pub(crate) async fn call(&self, measure: Measure, worker: usize) -> Result<(), String> {
        match measure {
            Measure::SetContext => {
                let (poc_token, ..) = self.emrs.first().ok_or("no EMR")?;
                let (status, answer) = send(
                    self.http
                        .post(&*self.set_context_url)
                        .bearer_auth(poc_token)
                        .header("content-type", "application/fhir+json")
                        .body(self.xl.as_ref().clone()),
                )
                .await?;
                expect(status, 200, "$set-context", &answer)
            }
            Measure::Token => token_exchange(&self.http, &self.exchange).await.map(|_| ()),
            Measure::Write { emrs } => {
                let emr = worker % emrs.clamp(1, self.emrs.len().max(1));
                let (_, app_token, patient) = self.emrs.get(emr).ok_or("no EMR")?;
                let body = json!({"resourceType": "Observation", "status": "final",
                    "code": {"text": "heart rate"},
                    "subject": {"reference": patient},
                    "valueQuantity": {"value": 72, "unit": "/min"}});
                let (status, answer) = send(
                    self.http
                        .post(&*self.write_url)
                        .bearer_auth(app_token)
                        .header("content-type", "application/fhir+json")
                        .body(body.to_string()),
                )
                .await?;
                expect(status, 201, "Observation", &answer)
            }
            Measure::Read => {
                let (url, token) = &*self.read;
                let response = self
                    .http
                    .get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let status = response.status().as_u16();
                let body = response.bytes().await.map_err(|e| e.to_string())?;
                if status == 200 && !body.is_empty() {
                    Ok(())
                } else {
                    Err(format!("read: {status}"))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_xl_request_has_seven_entries_and_no_refused_url() {
        let body: Value = serde_json::from_slice(&xl_request().unwrap()).unwrap();
        let entries = body["parameter"][11]["resource"]["entry"]
            .as_array()
            .unwrap();
        assert_eq!(entries.len(), 7);
        assert_eq!(entries[6]["request"]["url"], "MedicationStatement");
    }
}
