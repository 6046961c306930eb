//! The pure arithmetic of `jpki bench scale`: percentiles of latency samples, the power-law
//! fit `y = a · x^b` through measured points (its exponent says how a cost grows with size:
//! b ≈ 0 constant, b ≈ 1 linear), and the extrapolations the tables state.

/// The `p`-th percentile (0..=100) of `samples` by nearest rank (sorted copy); NaN if empty.
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p.clamp(0.0, 100.0) / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Least-squares fit of `y = a · x^b` in log-log space over the points with x, y > 0; `None`
/// with fewer than two such points or all x equal.
pub fn power_fit(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let logs: Vec<(f64, f64)> =
        points.iter().filter(|(x, y)| *x > 0.0 && *y > 0.0).map(|(x, y)| (x.ln(), y.ln())).collect();
    let n = logs.len() as f64;
    if logs.len() < 2 {
        return None;
    }
    let (sx, sy) = logs.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let sxx: f64 = logs.iter().map(|(x, _)| (x - mx).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = logs.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let b = sxy / sxx;
    Some(((my - b * mx).exp(), b))
}

/// `y` at `x` on the fitted curve `(a, b)`.
pub fn at(fit: (f64, f64), x: f64) -> f64 {
    fit.0 * x.powf(fit.1)
}

/// Seconds to do `n` operations at `rate` per second on each of `cores` cores.
pub fn seconds_for(n: f64, rate_per_core: f64, cores: f64) -> f64 {
    n / (rate_per_core * cores).max(f64::MIN_POSITIVE)
}

/// Cores needed to do `n` operations in `seconds` at `rate_per_core`.
pub fn cores_for(n: f64, seconds: f64, rate_per_core: f64) -> f64 {
    n / (seconds * rate_per_core).max(f64::MIN_POSITIVE)
}

/// A duration for a table: ms under a second, s under ten minutes, min under ten hours, else h.
pub fn human_secs(s: f64) -> String {
    if !s.is_finite() {
        "–".into()
    } else if s < 1.0 {
        format!("{:.1} ms", s * 1000.0)
    } else if s < 600.0 {
        format!("{s:.1} s")
    } else if s < 36_000.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

/// A byte count for a table (B, KB, MB, GB: powers of 1000).
pub fn human_bytes(b: f64) -> String {
    match b {
        b if b < 1e3 => format!("{b:.0} B"),
        b if b < 1e6 => format!("{:.1} KB", b / 1e3),
        b if b < 1e9 => format!("{:.1} MB", b / 1e6),
        b => format!("{:.2} GB", b / 1e9),
    }
}

/// A count with its power of ten (10^5 …) when it is one, else with thousands separators.
pub fn human_count(n: u64) -> String {
    let mut p = 0;
    let mut v = n;
    while v >= 10 && v.is_multiple_of(10) {
        v /= 10;
        p += 1;
    }
    if v == 1 && p >= 3 {
        return format!("10^{p}");
    }
    let s = n.to_string();
    let mut out = String::new();
    for (k, c) in s.chars().enumerate() {
        if k > 0 && (s.len() - k).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).rev().collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn the_power_fit_finds_the_exponent() {
        let linear: Vec<(f64, f64)> = [1e5, 1e6, 1e7].iter().map(|&x| (x, 3e-6 * x)).collect();
        let (a, b) = power_fit(&linear).unwrap();
        assert!((b - 1.0).abs() < 1e-9, "{b}");
        assert!((at((a, b), 2e8) - 600.0).abs() < 1e-6);
        let flat = [(1e6, 5.0), (1e7, 5.0)];
        assert!(power_fit(&flat).unwrap().1.abs() < 1e-12);
        assert!(power_fit(&[(1e6, 5.0)]).is_none());
        assert!(power_fit(&[(1e6, 5.0), (1e6, 6.0)]).is_none());
        assert!(power_fit(&[(0.0, 5.0), (1e6, 6.0)]).is_none(), "x = 0 is left out");
    }

    #[test]
    fn extrapolations() {
        assert_eq!(seconds_for(2e8, 1000.0, 2.0), 1e5);
        assert_eq!(cores_for(2e8, 86_400.0, 1000.0), 2e8 / 86_400_000.0);
    }

    #[test]
    fn human_units() {
        assert_eq!(human_count(100_000), "10^5");
        assert_eq!(human_count(10_000_000), "10^7");
        assert_eq!(human_count(1_234_567), "1,234,567");
        assert_eq!(human_count(999), "999");
        assert_eq!(human_bytes(1_500.0), "1.5 KB");
        assert_eq!(human_bytes(2.5e9), "2.50 GB");
        assert_eq!(human_secs(0.0123), "12.3 ms");
        assert_eq!(human_secs(90.0), "90.0 s");
        assert_eq!(human_secs(7200.0), "120 min");
        assert_eq!(human_secs(72_000.0), "20.0 h");
    }
}
