use clap::{Parser, Subcommand};
use obelix::clients::{books, cacofonix, queue, rooms, tablet};
use obelix::settings::Settings;
use obelix::startup::Application;

/// Obelix: Olympic results (and more) as one supervised actor tree on PostgreSQL.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default): config.toml, then OBELIX__… environment variables.
    Serve,
    /// A stone tablet following games and teams, by polling or by pushes.
    Tablet(tablet::TabletArgs),
    /// The reporter: plays score updates and medal awards.
    Cacofonix(cacofonix::CacofonixArgs),
    /// The log queue: create-topic, topics, produce, consume.
    Queue(queue::QueueArgs),
    /// The Pygmy.com bookstore: list, search TOPIC, lookup ID, buy ID.
    Books(books::BooksArgs),
    /// Room reservation (seed 003): an interactive prompt with a client-side cache.
    Rooms(rooms::RoomsArgs),
}

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command.unwrap_or(Command::Serve)
    {
        Command::Serve => serve().await,
        Command::Tablet(args) => tablet::run(args).await.map_err(Into::into),
        Command::Cacofonix(args) => cacofonix::run(args).await.map_err(Into::into),
        Command::Queue(args) => queue::run(args).await.map_err(Into::into),
        Command::Books(args) => books::run(args).await.map_err(Into::into),
        Command::Rooms(args) => rooms::run(args).await.map_err(Into::into),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("obelix: {e}");
            // At once: a start that failed half-way may have left actors on this runtime, and
            // dropping it under them only adds panics to the one line that matters.
            std::process::exit(1)
        }
    }
}

async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::load()?;
    obelix::telemetry::init("info", settings.log.format);
    obelix::telemetry::log_panics();
    let app = Application::build(settings)
        .await
        .map_err(|e| format!("cannot start: {e}"))?;
    app.run_until_stopped().await?;
    Ok(())
}
