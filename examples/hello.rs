//! The baseline for read throughput: a bare actix-web handler, same worker count as Obelix.
//! `cargo run --release --example hello -- 127.0.0.1:18081 2`

use actix_web::{App, HttpServer, web};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let address = args.next().unwrap_or_else(|| "127.0.0.1:18081".into());
    let workers: usize = args.next().and_then(|w| w.parse().ok()).unwrap_or(2);
    HttpServer::new(|| App::new().route("/", web::get().to(|| async { "hello" })))
        .workers(workers)
        .bind(address)?
        .run()
        .await
}
