//! `vestibule routes --admin ADDR`: the routes a running Vestibule serves as a small table, in
//! the spirit of `docker ps`'s PORTS column. A client of `/api/routes` only: it knows nothing
//! the admin API does not say.
//!
//! ```text
//! TENANT  NAME      PORTS                         ENDPOINTS
//! acme    shop-db   30000->5432/tcp               2
//! acme    p8080-…   http://web.acme.test/->8080   1
//! ```
//!
//! TENANT is the namespace. NAME is, for a Docker `tcp://` port, the container (compose
//! service, else container name) the port is kept for; for a Service annotated
//! `vestibule.dev/tcp-ports`, the Service; otherwise the TCPRoute or the Service.
//! PORTS is `PUBLIC->CONTAINER/tcp` for TCP ports, `scheme://host/path->PORT` for HTTP routes.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::providers::docker::streams::GATEWAY;

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Row {
    pub tenant: String,
    pub name: String,
    pub ports: String,
    pub endpoints: usize,
}

/// Fetches `/api/routes` from `admin` and renders the table.
pub async fn fetch(admin: SocketAddr) -> Result<String, String> {
    Ok(render(&fetch_rows(admin).await?))
}

/// Fetches `/api/routes` from `admin`: its rows.
pub async fn fetch_rows(admin: SocketAddr) -> Result<Vec<Row>, String> {
    let body = tokio::time::timeout(Duration::from_secs(10), get(admin, "/api/routes"))
        .await
        .map_err(|_| "no answer within 10 s".to_string())??;
    let routes: Value = serde_json::from_slice(&body).map_err(|e| format!("/api/routes is not JSON: {e}"))?;
    Ok(rows(&routes))
}

async fn get(admin: SocketAddr, path: &str) -> Result<Bytes, String> {
    let stream = tokio::net::TcpStream::connect(admin)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header(http::header::HOST, admin.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if !status.is_success() {
        return Err(format!("{path} answered {status}"));
    }
    Ok(body)
}

/// The rows of an `/api/routes` answer (`{"routes": RouteTable::describe()}`), sorted.
pub fn rows(answer: &Value) -> Vec<Row> {
    let routes = &answer["routes"];
    let mut rows = Vec::new();
    let tls_hosts: Vec<&str> = routes["certificates"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["hosts"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    for host in routes["hosts"].as_array().into_iter().flatten() {
        let name = host["host"].as_str().unwrap_or("*");
        for path in host["paths"].as_array().into_iter().flatten() {
            // A host served with the default certificate (an `https://` label, spec.tls without
            // a secretName) is in no certificate's hosts; its plain HTTP is redirected.
            let tls = tls_hosts.contains(&name) || path.get("plainHttp").is_some();
            let scheme = if tls { "https" } else { "http" };
            let Some((tenant, service, port)) = path["backend"].as_str().and_then(split_backend) else {
                continue;
            };
            rows.push(Row {
                tenant,
                name: service,
                ports: format!("{scheme}://{name}{}->{port}", path["path"].as_str().unwrap_or("/")),
                endpoints: count(&path["endpoints"]),
            });
        }
    }
    for port in routes["gateway"].as_array().into_iter().flatten() {
        if port["protocol"] != "TCP" {
            continue;
        }
        let public = port["port"].as_u64().unwrap_or_default();
        for connection in port["connections"].as_array().into_iter().flatten() {
            let route = connection["route"].as_str().unwrap_or_default();
            for backend in connection["backends"].as_array().into_iter().flatten() {
                let Some((tenant, service, container_port)) = backend["backend"].as_str().and_then(split_backend)
                else {
                    continue;
                };
                let on = |gateway: &str| {
                    port["listeners"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|l| l.as_str() == Some(&format!("{tenant}/{gateway}/tcp-{public}")))
                };
                let route_name = route.rsplit('/').next().unwrap_or(route);
                let name = match route_name
                    .strip_prefix("tcp-")
                    .and_then(|rest| rest.strip_suffix(&format!("-{container_port}")))
                {
                    Some(container) if on(GATEWAY) => container.to_string(),
                    // A Service annotated vestibule.dev/tcp-ports: the Service.
                    _ if on(crate::tcp_ports::GATEWAY) => service,
                    _ => route_name.to_string(),
                };
                rows.push(Row {
                    tenant,
                    name,
                    ports: format!("{public}->{container_port}/tcp"),
                    endpoints: count(&backend["endpoints"]),
                });
            }
        }
    }
    rows.sort();
    rows
}

fn count(endpoints: &Value) -> usize {
    endpoints.as_array().map_or(0, Vec::len)
}

/// `namespace/service:port` → its parts.
fn split_backend(key: &str) -> Option<(String, String, String)> {
    let (namespace, rest) = key.split_once('/')?;
    let (service, port) = rest.rsplit_once(':')?;
    Some((namespace.to_string(), service.to_string(), port.to_string()))
}

/// The rows as aligned columns, a header first.
pub fn render(rows: &[Row]) -> String {
    let header = Row {
        tenant: "TENANT".into(),
        name: "NAME".into(),
        ports: "PORTS".into(),
        endpoints: 0,
    };
    let width = |f: fn(&Row) -> usize| rows.iter().chain([&header]).map(f).max().unwrap_or(0);
    let (tenant, name, ports) = (
        width(|r| r.tenant.len()),
        width(|r| r.name.len()),
        width(|r| r.ports.len()),
    );
    let mut out = format!(
        "{:tenant$}  {:name$}  {:ports$}  ENDPOINTS\n",
        header.tenant, header.name, header.ports
    );
    for row in rows {
        out.push_str(&format!(
            "{:tenant$}  {:name$}  {:ports$}  {}\n",
            row.tenant, row.name, row.ports, row.endpoints
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_host_with_the_default_certificate_is_https() {
        let answer = json!({"routes": {
        "hosts": [{"host": "demo.apps.example", "paths": [
            {"match": "Prefix", "path": "/", "route": "r", "backend": "demo/p8080-web:8080",
             "protocol": "http1", "endpoints": ["10.0.0.2:8080"], "plainHttp": "redirect 308 to https"}]},
            {"host": "plain.example", "paths": [
            {"match": "Prefix", "path": "/", "route": "r", "backend": "demo/p8080-plain:8080",
             "protocol": "http1", "endpoints": []}]}],
        "certificates": []}});
        let ports: Vec<String> = rows(&answer).into_iter().map(|r| r.ports).collect();
        assert_eq!(
            ports,
            ["http://plain.example/->8080", "https://demo.apps.example/->8080"]
        );
    }

    #[test]
    fn tcp_ports_and_http_routes_become_rows() {
        let answer = json!({"generation": 3, "routes": {
        "hosts": [{"host": "web.acme.test", "paths": [
            {"match": "Prefix", "path": "/", "route": "r", "backend": "acme/p8080-web:8080",
             "protocol": "http1", "endpoints": ["10.0.0.2:8080"]}]}],
        "certificates": [{"hosts": ["web.acme.test"], "secret": null}],
        "gateway": [
            {"port": 30001, "protocol": "TCP", "listeners": ["acme/docker-tcp/tcp-30001"], "connections": [
                {"sni": "*", "route": "tcproute/acme/tcp-shop-db-5432", "backends": [
                    {"weight": 1, "backend": "acme/tcp-shop-db-5432:5432",
                     "endpoints": ["10.0.0.3:5432", "10.0.0.4:5432"]}]}]},
            {"port": 30002, "protocol": "TCP", "listeners": ["shop/vestibule-tcp/tcp-30002"], "connections": [
                {"sni": "*", "route": "tcproute/shop/tcp-postgres-5432", "backends": [
                    {"weight": 1, "backend": "shop/postgres:5432", "endpoints": ["10.0.1.1:5433"]}]}]},
            {"port": 9000, "protocol": "TCP", "listeners": ["ops/edge/tcp"], "connections": [
                {"sni": "*", "route": "tcproute/ops/tcp-x-1", "backends": [
                    {"weight": 1, "backend": "ops/x:1", "endpoints": []}]}]}
        ]}});
        let rows = rows(&answer);
        let text = render(&rows);
        assert_eq!(
            text,
            "TENANT  NAME       PORTS                         ENDPOINTS\n\
             acme    p8080-web  https://web.acme.test/->8080  1\n\
             acme    shop-db    30001->5432/tcp               2\n\
             ops     tcp-x-1    9000->1/tcp                   0\n\
             shop    postgres   30002->5432/tcp               1\n"
        );
    }
}
