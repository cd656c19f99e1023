use clap::Parser;
use rand::{Rng, SeedableRng};

/// Parses records and prints them as JSON.
#[derive(Parser)]
struct Args {
    /// How many random records to add.
    #[arg(long, default_value_t = 2)]
    random: usize,
}

fn main() -> anyhow::Result<()> {
    env_logger::init();
    let args = Args::parse();
    let mut text = String::from("a=1\nb=2\n");
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for i in 0..args.random {
        text.push_str(&format!("r{i}={}\n", rng.gen_range(0..100)));
    }
    let records = bench_core::parse(&text)?;
    log::info!("{} records", records.len());
    println!("{}", bench_core::to_json(&records));
    Ok(())
}
