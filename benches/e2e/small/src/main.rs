use clap::Parser;
use serde::{Deserialize, Serialize};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "world")]
    name: String,
}

#[derive(Serialize, Deserialize)]
struct Greeting {
    to: String,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    println!("{}", serde_json::to_string(&Greeting { to: a.name })?);
    Ok(())
}
