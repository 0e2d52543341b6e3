//! Timing helpers shared by the benchmarks.

/// Median time of one call over 9 samples of `iterations` calls, in nanoseconds.
pub fn median_ns(mut call: impl FnMut(), iterations: u32) -> f64 {
    let mut samples: Vec<f64> = (0..9)
        .map(|_| {
            let start = std::time::Instant::now();
            for _ in 0..iterations {
                call();
            }
            start.elapsed().as_nanos() as f64 / f64::from(iterations)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[4]
}
