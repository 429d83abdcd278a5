use std::time::Instant;
fn main() {
    let p = firstline::triage::Policy::embedded();
    let text: Vec<String> = std::fs::read_to_string("/tmp/fl/batch.jsonl").unwrap().lines().take(2000)
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["text"].as_str().unwrap().to_string()).collect();
    let norms: Vec<_> = text.iter().map(|t| firstline::triage::text::normalize(t, &p.text)).collect();
    let t = Instant::now();
    let mut n = 0;
    for nm in &norms { n += p.anchors.automaton.find_overlapping_iter(nm.text.as_bytes()).count(); }
    println!("set: {:?} ({} matches)", t.elapsed(), n);
    let t = Instant::now();
    for tx in &text { let _ = firstline::triage::text::normalize(tx, &p.text); }
    println!("normalize: {:?}", t.elapsed());
    let t = Instant::now();
    for tx in &text { let _ = firstline::triage::triage(&p, tx); }
    println!("triage: {:?}", t.elapsed());
}
