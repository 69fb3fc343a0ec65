//! Differential privacy (`dp.rs`, `query/privacy.rs`): the noise each contributor adds is the
//! discrete Gaussian of the scale the request states, it reaches the released sum, what is
//! left after colluders remove their own noise still meets the guarantee, and the root
//! releases nothing of a version that sums fewer contributors than the honest sources.
//!
//! The goodness-of-fit tests use fixed seeds: each is a chi-square test at a false-alarm rate
//! of 0.1% (for a random seed, a correct sampler fails it with probability 0.001); with
//! the seeds fixed the outcome is deterministic.

use grove_protocol::dp::{self, NoiseSpec};
use grove_protocol::engine::Failure;
use grove_protocol::harness::{Cluster, HarnessConfig, LaunchParams};
use grove_protocol::query::{CompiledQuery, Query, Record, Value};

/// The probabilities of `N_Z(0, s^2)` over `-w..=w`, `w = 10 s + 1` (the rest is below
/// e^-50), in bins of `b = ceil(s / 8)` consecutive integers: (w, b, per bin).
fn pmf(s: f64) -> (i64, i64, Vec<f64>) {
    let w = (10.0 * s).ceil() as i64 + 1;
    let b = (s / 8.0).ceil().max(1.0) as i64;
    let mut bins = vec![0.0; ((2 * w) / b + 1) as usize];
    for x in -w..=w {
        bins[((x + w) / b) as usize] += (-(x as f64).powi(2) / (2.0 * s * s)).exp();
    }
    let total: f64 = bins.iter().sum();
    (w, b, bins.into_iter().map(|p| p / total).collect())
}

/// Pearson's chi-square of `samples` against `N_Z(0, s^2)`, adjacent bins merged until each
/// expects at least 5: (statistic, degrees of freedom).
fn chi_square(samples: &[i64], s: f64) -> (f64, usize) {
    let (w, b, p) = pmf(s);
    let n = samples.len() as f64;
    let mut observed = vec![0u64; p.len()];
    for z in samples {
        let i = ((z + w).clamp(0, 2 * w) / b) as usize;
        observed[i] += 1;
    }
    let mut bins: Vec<(f64, f64)> = Vec::new();
    let (mut o, mut e) = (0.0, 0.0);
    for (obs, prob) in observed.iter().zip(&p) {
        o += *obs as f64;
        e += prob * n;
        if e >= 5.0 {
            bins.push((o, e));
            o = 0.0;
            e = 0.0;
        }
    }
    if let Some(last) = bins.last_mut() {
        last.0 += o;
        last.1 += e;
    }
    let stat = bins.iter().map(|(o, e)| (o - e).powi(2) / e).sum();
    (stat, bins.len() - 1)
}

/// The chi-square quantile at 1 - 0.001 (Wilson and Hilferty's approximation, accurate to
/// well under 1% from 5 degrees of freedom up).
fn chi_square_critical(dof: usize) -> f64 {
    let k = dof as f64;
    let z = 3.090_232_306; // the standard normal's 0.999 quantile
    k * (1.0 - 2.0 / (9.0 * k) + z * (2.0 / (9.0 * k)).sqrt()).powi(3)
}

fn seed(i: u64) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&i.to_le_bytes());
    s[31] = 7;
    s
}

fn spec(sigma: f64, honest_sources: u32) -> NoiseSpec {
    NoiseSpec {
        sigma_milli: vec![(sigma * 1000.0).round() as u64],
        honest_sources,
    }
}

/// Each contributor's noise (one element from each of 20,000 seeds, as 20,000 contributors
/// would draw it) fits `N_Z(0, s^2)` at five scales, from below one unit to DISSEC's
/// settings (about 1.1e5 units per source), drawn by the fixed-width exact sampler; and at a
/// scale beyond its bounds, drawn by prio's.
#[test]
fn each_contributors_noise_is_the_discrete_gaussian_of_the_stated_scale() {
    for (k, sigma) in [0.8, 3.7, 41.3, 2_500.417, 110_341.003, 1_000_000.007]
        .into_iter()
        .enumerate()
    {
        let n = spec(sigma, 1);
        assert_eq!(dp::fixed_width(&n, 0), sigma < 500_000.0, "sigma {sigma}");
        let samples: Vec<i64> = (0..20_000u64)
            .map(|i| dp::noise(&seed(i + 100_000 * k as u64), &n, 1)[0])
            .collect();
        let (stat, dof) = chi_square(&samples, sigma);
        let critical = chi_square_critical(dof);
        assert!(
            stat < critical,
            "sigma {sigma}: chi-square {stat:.1} over {dof} degrees of freedom, critical {critical:.1}"
        );
    }
}

/// One contributor's whole vector (2,000 elements from one seed, as a contributor draws
/// them) fits too: the elements of one stream are independent draws, not only the first.
#[test]
fn the_elements_of_one_vector_are_independent_draws_of_the_scale() {
    for (k, sigma) in [1.3, 77.7].into_iter().enumerate() {
        let n = spec(sigma, 1);
        let samples: Vec<i64> = (0..10u64)
            .flat_map(|i| dp::noise(&seed(i + 7_000_000 * (k as u64 + 1)), &n, 2_000))
            .collect();
        let (stat, dof) = chi_square(&samples, sigma);
        let critical = chi_square_critical(dof);
        assert!(
            stat < critical,
            "sigma {sigma}: chi-square {stat:.1} over {dof} degrees of freedom, critical {critical:.1}"
        );
    }
}

/// A query with a privacy clause: counts and sums of `x` in `[0, 100]`, one record each.
fn dp_query(epsilon: f64, honest: u32) -> CompiledQuery {
    Query::parse(&format!(
        "SELECT count(*), sum(x) FROM t CLIP x TO [0, 100] LIMIT PER CONTRIBUTOR 1 SCALE 0 \
         WITH PRIVACY EPSILON {epsilon} DELTA 1e-9 HONEST SOURCES {honest}"
    ))
    .unwrap()
    .compile()
    .unwrap()
}

/// The noise that colluders cannot remove: `m` contributors, of whom `m - h` collude and
/// subtract their own noise from the result, leave the sum of `h` honest sources' noise. Its
/// zCDP bound (Kairouz, Liu, Steinke) is within the query's budget, and over 4,000 seeded
/// results its deviation is at least the central Gaussian mechanism's for the same
/// sensitivity and budget (which is what the guarantee needs), and it fits the normal of
/// variance `h s^2` (chi-square at 0.1%).
#[test]
fn what_colluders_cannot_remove_still_meets_the_guarantee() {
    let (h, m) = (90u32, 100u32);
    let q = dp_query(1.0, h);
    let noise = q
        .spec()
        .noise
        .clone()
        .expect("a privacy clause compiles to noise");
    assert_eq!(noise.honest_sources, h);
    let parts = q.privacy_parts();
    let rho = dp::rho_for(1.0, 1e-9).unwrap();
    let honest_rho = dp::rho_of_parts(parts, 1, &noise.sigma_milli, h);
    assert!(
        honest_rho <= rho,
        "the honest part alone gives rho {honest_rho}, over the budget {rho}"
    );
    // Element 1 is the sum; the central mechanism with the same split of the budget over
    // the parts adds N(0, central_sigma^2) to it once.
    let sum_part = parts.iter().find(|p| p.columns.contains(&1)).unwrap();
    let central_sigma = sum_part.l2 / (2.0 * rho / parts.len() as f64).sqrt();
    let trials = 4_000u64;
    let mut remaining = Vec::with_capacity(trials as usize);
    for trial in 0..trials {
        // Contributors h..m collude: their noise is known to them and subtracted.
        let honest: i64 = (0..u64::from(h))
            .map(|c| dp::noise(&seed(trial * 1000 + c), &noise, 2)[1])
            .sum();
        remaining.push(honest);
    }
    let var = remaining.iter().map(|z| (*z as f64).powi(2)).sum::<f64>() / trials as f64;
    assert!(
        var.sqrt() >= 0.97 * central_sigma,
        "{} colluders of {m} leave a deviation of {:.1}, below the central mechanism's {central_sigma:.1}",
        m - h,
        var.sqrt()
    );
    // The sum of h discrete Gaussians of scale s is close to N_Z(0, h s^2).
    let (stat, dof) = chi_square(&remaining, noise.total_sigma(1, u64::from(h)));
    assert!(
        stat < chi_square_critical(dof),
        "chi-square {stat:.1}, {dof} dof"
    );
}

fn records(x: f64) -> Vec<Record> {
    vec![[("x".to_string(), Value::Number(x))].into_iter().collect()]
}

/// Runs the DP query at epsilon 10 (so that 20 contributors' noisy counts stay well above
/// `k_min = 1`) on 40 nodes, `contributors` of them contributing one record each.
fn run_dp(
    honest: u32,
    contributors: usize,
    seed: u64,
) -> (Cluster, grove_protocol::harness::Outcome, CompiledQuery) {
    run_dp_k(honest, contributors, seed, 1)
}

/// [`run_dp`] with the request's `k_min`.
fn run_dp_k(
    honest: u32,
    contributors: usize,
    seed: u64,
    k_min: u64,
) -> (Cluster, grove_protocol::harness::Outcome, CompiledQuery) {
    let q = dp_query(10.0, honest);
    let mut c = Cluster::new(HarnessConfig::new(40, seed));
    for i in 1..=contributors {
        c.set_contribution(i, q.evaluate(&records(i as f64)));
    }
    let mut p = LaunchParams::new(5, 3, 4, 2, 1);
    p.spec = q.spec().clone();
    p.max_contributors = 100;
    p.k_min = k_min;
    let id = c.launch(0, &p);
    let outcome = c.run_checked(&id);
    (c, outcome, q)
}

/// Through the engines: every contributor persisted its values plus its own noise, the root
/// released exactly the sum of those noisy vectors (the harness's result check), and the
/// released count and sum differ from the plain ones by a plausible amount of noise.
#[test]
fn the_released_sum_carries_every_contributors_noise() {
    let (c, outcome, q) = run_dp(10, 20, 5);
    let released = outcome
        .released
        .clone()
        .unwrap_or_else(|| panic!("{:?}", outcome.failures));
    assert_eq!(released.version.count, 20);
    let noise = q.spec().noise.clone().unwrap();
    let plain: Vec<f64> = vec![20.0, (1..=20).sum::<usize>() as f64, 20.0];
    let mut noisy_elements = 0;
    for (e, (got, want)) in released.values.iter().zip(&plain).enumerate() {
        let z = (got - want) / noise.total_sigma(e, 20);
        assert!(
            z.abs() < 6.0,
            "element {e}: {got} is {z:.1} deviations from {want}"
        );
        if got != want {
            noisy_elements += 1;
        }
    }
    assert!(
        noisy_elements >= 2,
        "{:?} is the plain sum {plain:?}",
        released.values
    );
    // Each contributor's persisted vector is its encoding plus noise.
    let id = released.computation;
    let with_noise = (1..=20)
        .filter(|i| {
            let v = c.encoded_contribution(&id, *i).unwrap();
            v != q.contribution(&records(*i as f64)).unwrap()
        })
        .count();
    assert_eq!(with_noise, 20);
}

/// A version summing fewer contributors than the honest sources the noise was sized for
/// carries less noise than the guarantee needs: the root members release nothing of it, and
/// the commissioner's failure says why (too few noise sources, not `k_min`: the 20
/// contributors' noisy counts are far above `k_min = 1`).
#[test]
fn fewer_contributors_than_honest_sources_release_nothing() {
    let (_, outcome, _) = run_dp(25, 20, 6);
    assert!(
        outcome
            .released
            .as_ref()
            .is_none_or(|r| r.released.iter().all(|x| !x)),
        "released {:?}",
        outcome.released.map(|r| r.values)
    );
    assert_eq!(
        outcome.failures,
        vec![Failure::TooFewNoiseSources {
            summed: 20,
            honest_sources: 25
        }]
    );
    let (_, enough, _) = run_dp(20, 20, 6);
    assert!(enough.failures.is_empty(), "{:?}", enough.failures);
    assert!(enough
        .released
        .is_some_and(|r| r.released.iter().all(|x| *x)));
}

/// With enough noise sources, a DP query whose cells miss `k_min` still fails for `k_min`:
/// the new reason is not reported where the old one is the truth.
#[test]
fn enough_noise_sources_but_too_few_contributors_for_k_min_is_k_min() {
    let (_, outcome, _) = run_dp_k(20, 20, 6, 1_000);
    assert!(outcome.released.is_none(), "{:?}", outcome.released);
    assert!(
        matches!(
            outcome.failures.as_slice(),
            [Failure::KMinNotMet { k_min: 1_000, .. }]
        ),
        "{:?}",
        outcome.failures
    );
}

/// The privacy clause prints canonically, and a query whose sensitivity is unbounded (no
/// `LIMIT PER CONTRIBUTOR`) or whose budget is out of range is refused at the clause.
#[test]
fn the_privacy_clause_is_canonical_and_checked() {
    let q = Query::parse(
        "select sum(x) from t clip x to [0, 10] limit per contributor 3 \
         with privacy epsilon 0.5 delta 1e-9",
    )
    .unwrap();
    let text = q.to_string();
    assert!(
        text.ends_with("WITH PRIVACY EPSILON 0.5 DELTA 0.000000001 HONEST SOURCES 1"),
        "{text}"
    );
    assert_eq!(Query::parse(&text).unwrap(), q);
    let e =
        Query::parse("SELECT sum(x) FROM t CLIP x TO [0, 10]\nWITH PRIVACY EPSILON 1 DELTA 1e-9")
            .unwrap_err();
    assert_eq!((e.line, e.column), (2, 1), "{e}");
    assert!(e.to_string().contains("unbounded"), "{e}");
    let e = Query::parse(
        "SELECT count(*) FROM t LIMIT PER CONTRIBUTOR 1 WITH PRIVACY EPSILON 0 DELTA 1e-9",
    )
    .unwrap_err();
    assert_eq!((e.line, e.column), (1, 69), "{e}");
    let e = Query::parse(
        "SELECT count(*) FROM t LIMIT PER CONTRIBUTOR 1 WITH PRIVACY EPSILON 1 DELTA 0.5",
    )
    .unwrap_err();
    assert!(e.to_string().contains("DELTA"), "{e}");
    // Without the clause, no noise; with it, the request's spec carries the noise.
    let plain = Query::parse("SELECT count(*) FROM t LIMIT PER CONTRIBUTOR 1").unwrap();
    assert!(plain.compile().unwrap().spec().noise.is_none());
    assert!(dp_query(1.0, 1).spec().noise.is_some());
}

/// Released through the engines, over 200 seeded runs of 20 contributors: the noise in the
/// released sum (released minus the plain sum) fits the sum of 20 discrete Gaussians of the
/// stated scale, `N_Z(0, 20 s^2)` (chi-square at 0.1% per element); and with the 10 colluders
/// (`HONEST SOURCES 10`) subtracting the noise they persisted, what remains fits the honest
/// sources' `N_Z(0, 10 s^2)`, whose deviation is at least the central Gaussian mechanism's
/// for the same sensitivity and budget split, and whose zCDP bound is within the budget.
#[test]
fn the_released_noise_over_many_runs_is_the_stated_discrete_gaussian() {
    const RUNS: u64 = 200;
    let (h, m) = (10u32, 20usize);
    let mut all: Vec<Vec<i64>> = vec![Vec::new(); 3];
    let mut honest_only: Vec<Vec<i64>> = vec![Vec::new(); 3];
    let mut spec = None;
    let mut skipped = 0u64;
    for run in 0..RUNS {
        // A run whose plan leaves a contributor alone in its leaf releases without it (no
        // group sums a manifest of one contributor): the noise sources are then not the 20
        // and the 10 this test states, so such a run is skipped. Which runs those are
        // depends on the plan's draw, not on the noise, so skipping them biases nothing.
        let q = dp_query(10.0, h);
        let mut c = Cluster::new(HarnessConfig::new(40, 10_000 + run));
        for i in 1..=m {
            c.set_contribution(i, q.evaluate(&records(i as f64)));
        }
        let mut p = LaunchParams::new(5, 3, 4, 2, 1);
        p.spec = q.spec().clone();
        p.max_contributors = 100;
        let id = c.launch(0, &p);
        let outcome = c.run_checked(&id);
        let released = outcome
            .released
            .unwrap_or_else(|| panic!("run {run}: {:?}", outcome.failures));
        if released.version.count != m as u64 {
            skipped += 1;
            continue;
        }
        let plain: Vec<f64> = vec![m as f64, (1..=m).sum::<usize>() as f64, m as f64];
        let id = released.computation;
        // Each colluder's own noise: what it persisted minus its encoded values.
        let mut colluders = [0i64; 3];
        for i in (h as usize + 1)..=m {
            let persisted = c.encoded_contribution(&id, i).unwrap();
            let values = q.contribution(&records(i as f64)).unwrap();
            for (e, (p, v)) in persisted.iter().zip(&values).enumerate() {
                colluders[e] += (*p - *v).to_i64_centered();
            }
        }
        for e in 0..3 {
            let z = (released.values[e] - plain[e]).round() as i64;
            all[e].push(z);
            honest_only[e].push(z - colluders[e]);
        }
        spec = Some(q);
    }
    assert!(
        skipped <= RUNS / 10,
        "{skipped} of {RUNS} runs left a contributor out"
    );
    let q = spec.unwrap();
    let noise = q.spec().noise.clone().unwrap();
    let rho = dp::rho_for(10.0, 1e-9).unwrap();
    assert!(dp::rho_of_parts(q.privacy_parts(), 1, &noise.sigma_milli, h) <= rho);
    for e in 0..3 {
        let (stat, dof) = chi_square(&all[e], noise.total_sigma(e, m as u64));
        assert!(
            stat < chi_square_critical(dof),
            "element {e}: released noise chi-square {stat:.1} over {dof} dof"
        );
        let (stat, dof) = chi_square(&honest_only[e], noise.total_sigma(e, u64::from(h)));
        assert!(
            stat < chi_square_critical(dof),
            "element {e}: honest noise chi-square {stat:.1} over {dof} dof"
        );
        let part = q
            .privacy_parts()
            .iter()
            .find(|p| p.columns.contains(&e))
            .unwrap();
        let central = part.l2 / (2.0 * rho / q.privacy_parts().len() as f64).sqrt();
        let sd = (honest_only[e]
            .iter()
            .map(|z| (*z as f64).powi(2))
            .sum::<f64>()
            / honest_only[e].len() as f64)
            .sqrt();
        assert!(
            sd >= 0.9 * central,
            "element {e}: colluders leave a deviation of {sd:.2}, the central mechanism's is {central:.2}"
        );
    }
}

/// The README's shape of query: `avg` and `var` of amounts clipped to [0, 2000], 20 records
/// per contributor. Each column of a ratio gets noise for its own sensitivity (the count's
/// noise per unit of sensitivity equals the sum's), not the sum's noise.
fn ratio_query(contributors: u32) -> CompiledQuery {
    Query::parse(&format!(
        "SELECT count(*), avg(amount), var(amount) FROM t CLIP amount TO [0, 2000] \
         LIMIT PER CONTRIBUTOR 20 WITH PRIVACY EPSILON 4 DELTA 1e-9 HONEST SOURCES {}",
        contributors * 9 / 10
    ))
    .unwrap()
    .compile()
    .unwrap()
}

fn amounts(i: u64) -> Vec<Record> {
    (0..20u64)
        .map(|j| {
            let x = ((i * 37 + j * 101) % 2001) as f64;
            [("amount".to_string(), Value::Number(x))]
                .into_iter()
                .collect()
        })
        .collect()
}

/// The fault the README's DP example showed (`avg = -0.29` with a 95% interval of +-2.8 for
/// amounts in [0, 2000]): the avg's count was noised at its sum's scale, so the ratio was
/// noise over noise with a delta-method interval that believed the noisy count. Over 200
/// seeded releases of 100 contributors, with each contributor's noise added as the engine
/// adds it (`dp::add_noise` on the encoded vector): every printed `avg` lies in [0, 2000] and
/// every `var` in [0, 1000^2]; each ratio's deviation is the delta method's from the released
/// elements' deviations; the ratios are printed (their counts are far above the rule's
/// threshold); and the true avg and var lie within their 95% intervals at the stated rate
/// (at most the 0.1% binomial quantile of misses for a 95% interval).
#[test]
fn avg_and_var_from_noisy_sums_hold_their_range_and_their_intervals() {
    let m = 100u64;
    let q = ratio_query(m as u32);
    let noise = q.spec().noise.clone().unwrap();
    // Columns: indicator, count, avg's sum and count, var's sum, squares and count.
    let sigma = |k: usize| noise.sigma(k);
    let layout: Vec<_> = q.columns().iter().map(|c| c.kind).collect();
    let col = |a: usize, kind: grove_protocol::query::ColumnKind| {
        q.columns()
            .iter()
            .position(|c| c.aggregate == Some(a) && c.kind == kind)
            .unwrap_or_else(|| panic!("{layout:?}"))
    };
    use grove_protocol::query::ColumnKind::{Count, Sum, SumOfSquares};
    let (avg_sum, avg_count) = (col(1, Sum), col(1, Count));
    // Sensitivity ratio 2000 (20 x 2000 against 20, plus rounding): the noise follows it.
    let ratio = sigma(avg_sum) / sigma(avg_count);
    assert!(
        (1900.0..2100.0).contains(&ratio),
        "avg's sum has {} and its count {} per source: ratio {ratio}",
        sigma(avg_sum),
        sigma(avg_count)
    );
    assert!(sigma(col(2, SumOfSquares)) > 1000.0 * sigma(col(2, Sum)));
    let plain_records: Vec<Vec<Record>> = (0..m).map(amounts).collect();
    let mut plain = vec![0.0; q.spec().length as usize];
    for r in &plain_records {
        for (p, v) in plain.iter_mut().zip(q.evaluate(r)) {
            *p += v;
        }
    }
    let truth = q.decode_plain(&plain, &vec![true; plain.len()], m);
    let exact = |c: usize| match &truth.rows[0].cells[c] {
        grove_protocol::query::Cell::Number(x) => *x,
        other => panic!("{other:?}"),
    };
    let (true_avg, true_var) = (exact(1), exact(2));
    let encoded: Vec<Vec<grove_protocol::field::Fp>> = plain_records
        .iter()
        .map(|r| q.contribution(r).unwrap())
        .collect();
    const RUNS: u64 = 200;
    let (mut printed, mut misses) = (0u32, 0u32);
    for run in 0..RUNS {
        let mut sum = vec![grove_protocol::field::Fp::ZERO; q.spec().length as usize];
        for (i, v) in encoded.iter().enumerate() {
            let mut v = v.clone();
            dp::add_noise(&mut v, &seed(run * 1_000 + i as u64 + 50_000_000), &noise);
            for (s, x) in sum.iter_mut().zip(v) {
                *s += x;
            }
        }
        let released = q.spec().decode_sum(&sum);
        let table = q.decode_released(&released, &vec![true; released.len()], m);
        let acc = q
            .accuracy(&released, &vec![true; released.len()], m)
            .unwrap();
        for (c, truth, lo, hi) in [(1, true_avg, 0.0, 2000.0), (2, true_var, 0.0, 1e6)] {
            let grove_protocol::query::Cell::Number(v) = table.rows[0].cells[c] else {
                continue;
            };
            assert!(
                (lo..=hi).contains(&v),
                "run {run}: {} = {v}",
                table.columns[c]
            );
            let cell = acc
                .cells
                .iter()
                .find(|x| x.column == table.columns[c])
                .unwrap();
            assert_eq!(cell.value, v);
            printed += 1;
            if !(cell.low..=cell.high).contains(&truth) {
                misses += 1;
            }
            if c == 1 {
                // The delta method: sd(s/c)^2 = (sd_s^2 + (s/c)^2 sd_c^2) / c^2.
                let unit = 100.0;
                let (s, n) = (released[avg_sum], released[avg_count]);
                let sd_s = noise.total_sigma(avg_sum, m) / unit;
                let sd_c = noise.total_sigma(avg_count, m) / unit;
                let want = (sd_s.powi(2) + (s / n * sd_c).powi(2)).sqrt() / n;
                assert!(
                    (cell.noise_sd - want).abs() <= 1e-9 * want,
                    "run {run}: {} against {want}",
                    cell.noise_sd
                );
            }
        }
    }
    // 95% intervals over 400 ratios: 20 misses expected; more than 34 is beyond the 0.1%
    // quantile of the binomial.
    assert!(
        misses <= 34,
        "{misses} of {printed} ratios outside their 95% interval"
    );
    assert_eq!(
        printed,
        2 * RUNS as u32,
        "every ratio's count is far above its noise"
    );
    eprintln!("{misses} of {printed} ratios outside their 95% interval");
}

/// The ratio rule: with noise, `avg`, `var` and `stddev` are printed only when the noisy count
/// is at least `RATIO_MIN_DEVIATIONS` (4) of its deviations; below (including a count of zero or
/// less) they print `-` and report no interval. A printed ratio is clamped to the clip.
#[test]
fn a_ratio_over_a_count_within_its_noise_prints_nothing() {
    let q = Query::parse(
        "SELECT count(*), avg(x), stddev(x) FROM t CLIP x TO [0, 10] LIMIT PER CONTRIBUTOR 1 \
         WITH PRIVACY EPSILON 1 DELTA 1e-9 HONEST SOURCES 50",
    )
    .unwrap()
    .compile()
    .unwrap();
    let noise = q.spec().noise.clone().unwrap();
    let m = 100u64;
    use grove_protocol::query::ColumnKind;
    let col = |a: Option<usize>, kind: ColumnKind| {
        q.columns()
            .iter()
            .position(|c| c.aggregate == a && c.kind == kind)
            .unwrap_or_else(|| panic!("{:?}", q.columns()))
    };
    let sd = |k: usize| noise.total_sigma(k, m) / 100.0;
    let threshold = grove_protocol::query::RATIO_MIN_DEVIATIONS;
    let all = vec![true; q.spec().length as usize];
    for (count_sds, printed) in [(-1.0, false), (0.0, false), (3.9, false), (4.01, true)] {
        let mut sums = vec![0.0; q.spec().length as usize];
        sums[col(None, ColumnKind::Contributor)] = 50.0;
        sums[col(Some(0), ColumnKind::Records)] = 50.0;
        let (ca, cs) = (
            col(Some(1), ColumnKind::Count),
            col(Some(2), ColumnKind::Count),
        );
        // The sums are those of a large noisy mean: clamped to the clip when printed.
        sums[ca] = count_sds * sd(ca);
        sums[col(Some(1), ColumnKind::Sum)] = 1_000.0 * sums[ca].abs().max(1.0);
        sums[cs] = count_sds * sd(cs);
        sums[col(Some(2), ColumnKind::Sum)] = 5.0 * sums[cs];
        sums[col(Some(2), ColumnKind::SumOfSquares)] = 25.0 * sums[cs];
        let table = q.decode_released(&sums, &all, m);
        let acc = q.accuracy(&sums, &all, m).unwrap();
        let ratios: Vec<_> = acc
            .cells
            .iter()
            .filter(|c| c.column != "count(*)")
            .collect();
        if printed {
            assert!(count_sds >= threshold);
            assert_eq!(
                table.rows[0].cells[1],
                grove_protocol::query::Cell::Number(10.0),
                "avg is clamped to the clip"
            );
            assert_eq!(ratios.len(), 2, "{acc}");
            assert!(
                ratios.iter().all(|c| c.low >= 0.0 && c.high <= 10.0),
                "{acc}"
            );
        } else {
            assert_eq!(table.rows[0].cells[1], grove_protocol::query::Cell::Null);
            assert_eq!(table.rows[0].cells[2], grove_protocol::query::Cell::Null);
            assert!(ratios.is_empty(), "count at {count_sds} deviations: {acc}");
        }
        // What `grove compute --json` carries for the table (`daemon/events.rs` serializes
        // it as is): a suppressed ratio is `null`, a printed one a number.
        let json = serde_json::to_value(&table).unwrap();
        let cells = &json["rows"][0]["cells"];
        for k in [1, 2] {
            assert_eq!(
                cells[k].is_null(),
                !printed,
                "JSON cell {k} at {count_sds} deviations: {cells}"
            );
            assert_eq!(cells[k].is_number(), printed, "{cells}");
        }
    }
}
