use std::time::Instant;
fn main() {
    let t = Instant::now();
    let p = firstline::triage::Policy::embedded();
    eprintln!("compile: {:?}", t.elapsed());
    eprintln!("patterns {} unanchored {} literals {}", p.patterns.len(), p.anchors.unanchored.len(), p.anchors.patterns.len());
    for &u in &p.anchors.unanchored { eprintln!("  U {} {}", p.attributes[p.patterns[u].attribute].name, &p.patterns[u].regex.as_str()[..p.patterns[u].regex.as_str().len().min(100)]); }
    let text: Vec<String> = std::fs::read_to_string("/tmp/fl/batch.jsonl").unwrap().lines().take(2000)
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["text"].as_str().unwrap().to_string()).collect();
    let bytes: usize = text.iter().map(|t| t.len()).sum();
    for _ in 0..5 {
        let t = Instant::now();
        for tx in &text { let _ = firstline::triage::triage(&p, tx); }
        let e = t.elapsed();
        eprintln!("triage: {:?} {:.1} MB/s", e, bytes as f64 / e.as_secs_f64() / 1e6);
    }
}
#[allow(dead_code)]
fn unused() {}
