//! `labrun run`: scenarios loaded and validated, the command line's options applied over
//! theirs, this process prepared (sandbox, network namespace, reaper), then each scenario
//! run in turn on one runtime.

use std::io::Write;
use std::time::Duration;

use crate::cli::RunArgs;
use crate::error::Error;
use crate::report::style::{Environment, Styles};
use crate::report::{self, Outcome};
use crate::scenario::{ServersUnderTest, UnderTest};
use crate::{grade, interrupt, run, scenario, supervise, workload};

/// Descriptors kept free beside the clients' sockets: server pipes, the runtime, reports.
const OPEN_FILES_RESERVE: u64 = 64;

/// How far ahead `--start-at` may be: shards wait for it with servers up, so a date a day
/// off is a typo, not a plan.
const MAX_START_AHEAD: Duration = Duration::from_secs(24 * 3600);

pub(crate) fn run_scenarios(args: RunArgs) -> Result<Outcome, Error> {
    // Every file is validated before anything starts: a typo in the third scenario must not
    // surface after the first two have run for minutes.
    let plans = args
        .scenarios
        .iter()
        .map(|path| scenario::load(path))
        .collect::<Result<Vec<_>, _>>()?;
    let display = match (args.json, args.quiet) {
        (true, _) => run::Display::Nothing,
        (false, true) => run::Display::Verdict,
        (false, false) => run::Display::Full,
    };
    let stop_at = match args.fail_fast {
        true => run::StopAt::FirstNonPass,
        false => run::StopAt::End,
    };
    run_plans(plans, &args, display, stop_at).map(|(overall, _)| overall)
}

/// Runs `plans` one after another with the options of `args`, showing each as `display`,
/// until `stop_at`; returns the overall outcome (the worst) and each plan's (fewer when it
/// stopped early).
pub(crate) fn run_plans(
    mut plans: Vec<scenario::Plan>,
    args: &RunArgs,
    display: run::Display,
    stop_at: run::StopAt,
) -> Result<(Outcome, Vec<Outcome>), Error> {
    // One scenario that asks for the sandbox puts every program of this run in it: the
    // sandbox and the private network are the process's, set before anything starts.
    let sandbox = args.sandbox || plans.iter().any(|plan| plan.sandbox);
    apply_run_options(&mut plans, args, sandbox)?;
    prepare_process(&plans, args, sandbox)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let options = run::RunOptions {
        report_dir: (!args.no_report).then(|| args.out.clone()),
        formats: args.format.clone(),
        display,
        styles: Styles::resolve(Environment::detect(), args.quiet || args.json),
        workers: args.workers.map(usize::from),
        repeat: args.repeat,
        fail_fast: args.fail_fast,
    };
    let outcome = runtime.block_on(run_in_turn(&plans, &options, stop_at));
    supervise::sandbox::clean_up();
    outcome
}

/// The command line's options over the scenarios' own (`--target`, `--seed`, `--start-at`,
/// `--shard`), each refused where it cannot mean what it says, before anything starts.
fn apply_run_options(plans: &mut [scenario::Plan], args: &RunArgs, sandbox: bool) -> Result<(), Error> {
    if let Some(plan) = plans.iter().find(|plan| plan.sandbox && args.shared_network) {
        eprintln!(
            "warning: `{}` asks for the sandbox (sandbox = true), whose network is private: \
             --shared-network does not apply to this run",
            plan.source.display()
        );
    }
    let server_options = [
        (!args.targets.is_empty(), "--target"),
        (args.start_at.is_some(), "--start-at"),
        (args.shard.is_some(), "--shard"),
    ];
    for plan in plans.iter_mut() {
        if let (UnderTest::ClientPrograms(_), Some((_, option))) =
            (&plan.under_test, server_options.iter().find(|(given, _)| *given))
        {
            return Err(Error::Usage(format!(
                "`{}` tests client programs against servers labrun plays: {option} is for \
                 simulated clients aimed at a server",
                plan.source.display()
            )));
        }
        if !args.targets.is_empty() {
            plan.aim_all(&args.targets).map_err(Error::Usage)?;
            plan.check_aims().map_err(Error::Usage)?;
        }
    }
    let aims_out = plans.iter().find_map(|plan| {
        let servers = &plan.under_test.servers()?.servers;
        Some((plan, servers.iter().find_map(|s| s.target())?))
    });
    if let Some((plan, target)) = aims_out
        && (sandbox || args.isolate_network)
    {
        return Err(Error::Usage(format!(
            "`{}` aims at a server out on the network ({target}), which the sandbox's private \
             network cannot reach: leave out --sandbox (and `sandbox = true`); there is no \
             program of yours to sandbox",
            plan.source.display()
        )));
    }
    if args.repeat > 1 && (args.shard.is_some() || args.start_at.is_some()) {
        return Err(Error::Usage(
            "--repeat runs a scenario several times, each its own load: it cannot be one shard \
             of a load shared out with --shard, nor start at one --start-at instant"
                .into(),
        ));
    }
    if let Some(seed) = args.seed {
        plans.iter_mut().for_each(|plan| plan.seed = seed);
    }
    if let Some(at) = args.start_at {
        let ahead =
            at.0.duration_since(std::time::SystemTime::now())
                .unwrap_or_default();
        if ahead > MAX_START_AHEAD {
            return Err(Error::Usage(format!(
                "--start-at {at} is {} from now; the most is {} (a typo in the date?)",
                humantime::format_duration(Duration::from_secs(ahead.as_secs())),
                humantime::format_duration(MAX_START_AHEAD)
            )));
        }
    }
    for plan in plans.iter_mut() {
        let source = plan.source.display().to_string();
        if let UnderTest::Servers(under_test) = &mut plan.under_test {
            under_test.start_at = args.start_at;
            if let Some(shard) = args.shard {
                shardable(&source, under_test, shard)?;
                under_test.shard = Some(shard);
            }
        }
    }
    Ok(())
}

/// Whether `plan` can be split by `--shard`: only echo clients can, as a chat or a broadcast
/// room is one conversation, and only into as many slices as it has clients (an empty slice
/// would pass having tested nothing).
fn shardable(source: &str, under_test: &ServersUnderTest, shard: scenario::Shard) -> Result<(), Error> {
    match under_test
        .groups
        .iter()
        .find(|g| g.workload != scenario::WorkloadKind::Echo)
    {
        Some(group) => Err(Error::Usage(format!(
            "--shard splits echo clients only; `{source}` has {} group `{}` (a chat or a broadcast \
             room must run in one process)",
            group.workload.label(),
            group.name
        ))),
        None if under_test.total_clients() < u64::from(shard.of) => Err(Error::Usage(format!(
            "--shard {shard}: `{source}` has {} client(s), so some of {} shards would run none; use \
             at most {} shards",
            under_test.total_clients(),
            shard.of,
            under_test.total_clients()
        ))),
        None => Ok(()),
    }
}

/// This process made ready to launch and drive `plans`: the sandbox and the network
/// namespace entered, before any thread exists (every thread and child started later
/// inherits them); then the reaper, the panic hook and the open-files limit.
fn prepare_process(plans: &[scenario::Plan], args: &RunArgs, sandbox: bool) -> Result<(), Error> {
    if sandbox {
        supervise::sandbox::enable(args.sandbox_owns_workdir)?;
        if args.sandbox_owns_workdir {
            let workdir = std::env::current_dir().map_err(Error::Runtime)?;
            supervise::sandbox::hand_over(&workdir).map_err(Error::Runtime)?;
        }
    }
    // A sandboxed program shares labrun's network namespace (its clients must reach it), so
    // that namespace is a private one: nothing on the host's loopback is reachable.
    if args.isolate_network || sandbox {
        grade::isolate::enter_private_network().map_err(Error::Isolation)?;
    } else if !args.shared_network {
        isolate_fixed_played_ports(plans);
    }
    supervise::registry::install_panic_hook();
    supervise::tree::become_subreaper();
    let open_files = workload::raise_open_files_limit();
    let most_clients = plans
        .iter()
        .filter_map(|plan| Some(plan.under_test.servers()?.total_clients()))
        .max();
    if let Some(clients) = most_clients
        && clients + OPEN_FILES_RESERVE > open_files
    {
        return Err(Error::TooManyClients { clients, open_files });
    }
    Ok(())
}

/// Runs `plans` one after another until the end or Ctrl-C, then shows what comes after
/// them all: the JSON reports (`--json`), or the side-by-side of several loads.
async fn run_in_turn(
    plans: &[scenario::Plan],
    options: &run::RunOptions,
    stop_at: run::StopAt,
) -> Result<(Outcome, Vec<Outcome>), Error> {
    let cancel = interrupt::watch().map_err(Error::Runtime)?;
    let mut overall = Outcome::Pass;
    let mut reports = Vec::with_capacity(plans.len());
    for (i, plan) in plans.iter().enumerate() {
        if i > 0 && options.display == run::Display::Full {
            let _ = writeln!(std::io::stdout());
        }
        let report = run::run_scenario(plan, options, &cancel).await?;
        overall = overall.worst(report.outcome);
        let stop = match (report.outcome, stop_at) {
            (Outcome::Pass, _) => false,
            (Outcome::Interrupted, _) | (_, run::StopAt::FirstNonPass) => true,
            (Outcome::Error, run::StopAt::FirstError) => true,
            (Outcome::Fail | Outcome::Error, _) => false,
        };
        reports.push(report);
        if stop {
            break;
        }
    }
    let not_run: Vec<&str> = plans[reports.len()..].iter().map(|p| p.name.as_str()).collect();
    if let Some(last) = reports.last()
        && !not_run.is_empty()
        && last.outcome != Outcome::Interrupted
    {
        eprintln!(
            "labrun: stopped after `{}` ({}); not run: {}",
            last.scenario.name,
            last.outcome.word().to_lowercase(),
            not_run.join(", ")
        );
    }
    let mut rendered = Vec::new();
    match options.display {
        run::Display::Nothing => {
            let json = match reports.as_slice() {
                [only] => serde_json::to_vec_pretty(only),
                all => serde_json::to_vec_pretty(all),
            };
            rendered = json.expect("a report always serializes");
            rendered.push(b'\n');
        }
        run::Display::Full if overall != Outcome::Interrupted => {
            // Load figures compare servers; runs of client programs have none.
            let loads: Vec<report::side_by_side::Load> = reports
                .iter()
                .filter_map(|r| match &r.tested {
                    report::Tested::Servers(servers) => Some((r, &**servers)),
                    report::Tested::ClientPrograms(_) => None,
                })
                .collect();
            if loads.len() > 1 {
                rendered.push(b'\n');
                report::side_by_side::render(&loads, &options.styles, &mut rendered)
                    .expect("rendering into memory cannot fail");
            }
        }
        run::Display::Full | run::Display::Verdict | run::Display::VerdictAndHints => {}
    }
    // A closed stdout (`| head`) is not an error.
    let _ = std::io::stdout().lock().write_all(&rendered);
    Ok((overall, reports.iter().map(|report| report.outcome).collect()))
}

/// Client programs often hard-code their ports (6000, 6001): a scenario playing servers on
/// fixed ports runs in a private network namespace where the machine allows, so those ports
/// never clash with the machine's own or with a parallel run. Elsewhere the ports are bound
/// on the shared loopback, and a busy one is refused with the name of its holder.
fn isolate_fixed_played_ports(plans: &[scenario::Plan]) {
    let fixed: Vec<String> = plans
        .iter()
        .filter_map(|plan| plan.under_test.programs())
        .flat_map(|under_test| &under_test.played)
        .filter_map(|server| match server.port {
            scenario::PortChoice::Fixed(port) => Some(port.to_string()),
            scenario::PortChoice::Auto => None,
        })
        .collect();
    if fixed.is_empty() {
        return;
    }
    // Tried in a child first: a failure after the namespace is entered cannot be undone.
    let entered = match grade::isolation_available() {
        true => grade::isolate::enter_private_network(),
        false => Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
    };
    if let Err(err) = entered {
        eprintln!(
            "warning: no private network namespace here ({err}; needs root or user namespaces): \
             the played servers bind port(s) {} on this machine's loopback",
            fixed.join(", ")
        );
    }
}
