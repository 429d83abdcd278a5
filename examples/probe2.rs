use std::collections::HashMap;
fn main() {
    let p = firstline::triage::Policy::embedded();
    let mut text = String::from("hello, our production node is down since this morning, all containers offline.\n\n```\n");
    for i in 0..300 {
        text.push_str(&format!("2024-03-10T04:12:{:02} hn7 kernel: [ {}.448213] ploop{}: error: failed to read block {} on /dev/sda3, I/O error, retrying\n", i % 60, i, i, i * 7));
    }
    text.push_str("```\n");
    let norm = firstline::triage::text::normalize(&text, &p.text);
    let mut per: HashMap<usize, usize> = HashMap::new();
    let mut total = 0;
    for m in p.anchors.automaton.find_overlapping_iter(norm.text.as_bytes()) {
        total += 1;
        for &pi in &p.anchors.patterns[m.pattern().as_usize()] { *per.entry(pi).or_default() += 1; }
    }
    let mut v: Vec<_> = per.into_iter().collect();
    v.sort_by_key(|x| std::cmp::Reverse(x.1));
    eprintln!("bytes {} literal hits {} pattern-starts {}", norm.text.len(), total, v.iter().map(|x| x.1).sum::<usize>());
    for (pi, n) in v.iter().take(12) { eprintln!("{n:6} {} {}", p.attributes[p.patterns[*pi].attribute].name, &p.patterns[*pi].regex.as_str()[..80.min(p.patterns[*pi].regex.as_str().len())]); }
    let t = std::time::Instant::now();
    for _ in 0..20 { std::hint::black_box(firstline::triage::triage(&p, &text)); }
    eprintln!("per message {:?} ({:.1} MB/s)", t.elapsed() / 20, text.len() as f64 * 20.0 / t.elapsed().as_secs_f64() / 1e6);
}
