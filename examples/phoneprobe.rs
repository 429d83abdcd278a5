use std::time::Instant;
fn main() {
    let nums = ["+49 89 5555 0147", "+1 (212) 555-0147", "+44 20 7946 0321", "+61 2 9876 5432", "+33 1 23 45 67 89", "+31 20 123 4567", "+420 555 123 456", "+971 4 123 4567"];
    let t = Instant::now();
    for i in 0..2000 { let n = nums[i % nums.len()]; let p = phonenumber::parse(None, n).unwrap(); std::hint::black_box(&p); }
    eprintln!("parse: {:?}", t.elapsed());
    let t = Instant::now();
    for i in 0..2000 { let n = nums[i % nums.len()]; let p = phonenumber::parse(None, n).unwrap(); std::hint::black_box(phonenumber::is_valid(&p)); }
    eprintln!("parse+valid: {:?}", t.elapsed());
    let t = Instant::now();
    for i in 0..2000 { let n = nums[i % nums.len()]; let p = phonenumber::parse(None, n).unwrap(); std::hint::black_box(p.format().mode(phonenumber::Mode::E164).to_string()); }
    eprintln!("parse+format: {:?}", t.elapsed());
}
