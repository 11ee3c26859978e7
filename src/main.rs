use obelix::settings::Settings;
use obelix::startup::Application;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    obelix::telemetry::init("info");
    obelix::telemetry::log_panics();
    let result = async {
        let settings = Settings::load()?;
        let app = Application::build(settings).await?;
        app.run_until_stopped().await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    }
    .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("obelix could not run: {e}");
            eprintln!("obelix: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
