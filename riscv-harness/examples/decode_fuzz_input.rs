fn main() {
    let data = std::fs::read(std::env::args().nth(1).unwrap()).unwrap();
    let (p, region, calls) = riscv_harness::fuzz_input::decode(&data);
    println!("profile {p} region {} bytes", region.len());
    for c in &calls {
        let a = &c.attr;
        println!(
            "cmd {} size {} attr[{}] {:02x?}",
            c.cmd,
            c.size,
            a.len(),
            &a[..a.len().min(64)]
        );
    }
    let t = std::time::Instant::now();
    let r = riscv_harness::fuzz_input::run(&data);
    println!("{:?} in {:?}", r, t.elapsed());
}
