//! Runs every example (the seed chapter's patterns in Rust) and checks what it prints.
#![cfg(not(miri))] // spawns processes

use std::path::PathBuf;
use std::process::Command;

/// Runs example `name` (the binary `cargo test` built next to this test, else through
/// `cargo run`) and returns its stdout; fails the test if it exits with an error.
#[track_caller]
fn run(name: &str, args: &[&str]) -> String {
    let built: Option<PathBuf> = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("examples").join(name)))
        .filter(|p| p.exists());
    let out = match built {
        Some(bin) => Command::new(bin).args(args).output(),
        None => Command::new(env!("CARGO"))
            .args(["run", "--quiet", "-p", "steploop", "--example", name, "--"])
            .args(args)
            .output(),
    }
    .expect("run the example");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "example {name} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

#[test]
fn yield_now() {
    let out = run("yield_now", &[]);
    let l = lines(&out);
    // The background task runs at the first yield, before the computation resumes.
    assert_eq!(l[0], "Фоновая задача работает!");
    assert_eq!(l[1], "Прогресс: 0.0%");
    let progress: Vec<_> = l.iter().filter(|s| s.starts_with("Прогресс")).collect();
    assert_eq!(progress.len(), 100);
    assert_eq!(*progress[99], "Прогресс: 99.0%");
    assert_eq!(l.last(), Some(&"Результат: 333332833333500000"));
}

#[test]
fn run_until_complete() {
    assert_eq!(run("run_until_complete", &[]), "Получили: Результат\n");
}

#[test]
fn run_forever() {
    let out = run("run_forever", &[]);
    let want: Vec<String> = (1..=7)
        .map(|i| format!("Итерация {i}"))
        .chain(["Event loop остановлен".into(), "Отменено задач: 1".into()])
        .collect();
    assert_eq!(lines(&out), want);
}

#[test]
fn run_once() {
    let out = run("run_once", &[]);
    assert_eq!(
        lines(&out),
        [
            "Задача выполнена",
            "шаг 1: callbacks=1 timers=0 io_events=0 pending=0 next_deadline=None",
            "Результат: 42",
        ]
    );
}

#[test]
fn sync_bridge() {
    assert_eq!(
        lines(&run("sync_bridge", &[])),
        [
            r#"Без запущенного loop: [("data", "value")]"#,
            r#"Из синхронного потока: [("data", "value")]"#,
            "Event loop остановлен",
        ]
    );
}

#[test]
fn chunked() {
    let out = run("chunked", &[]);
    let l = lines(&out);
    assert_eq!(l[..2], ["Обработка завершена", "Сумма: 99990000"]);
    // The heartbeat ran between every two chunks.
    let beats: u32 = l[2]
        .strip_prefix("Пульс между чанками: ")
        .and_then(|n| n.parse().ok())
        .expect("heartbeat line");
    assert!(beats >= 10, "{beats}");
}

#[test]
fn interruptible() {
    let out = run("interruptible", &[]);
    let l = lines(&out);
    assert_eq!(l.len(), 2, "{out}");
    assert!(l[0].starts_with("Задача прервана на итерации "), "{out}");
    assert_eq!(l[1], "Результат: None");
}

#[test]
fn callbacks() {
    assert_eq!(
        lines(&run("callbacks", &[])),
        [
            "Callback: first",
            "Callback: second",
            "Callback: delayed",
            "Callback: at_time",
            r#"Все результаты: ["first", "second", "delayed", "at_time"]"#,
        ]
    );
}

#[test]
fn slow_callback() {
    let out = run("slow_callback", &[]);
    let l = lines(&out);
    assert_eq!(l.len(), 2, "{out}");
    assert!(
        l[0].starts_with("Executing <slow_callback::demo::{{closure}}> took 0.0"),
        "{out}"
    );
    assert!(l[0].ends_with(" seconds"), "{out}");
    assert_eq!(l[1], "Готово");
}

#[test]
fn idle_steps() {
    assert_eq!(run("idle_steps", &[]), "1000 steps, 0 callbacks\n");
    assert_eq!(
        run("idle_steps", &["--with-fd"]),
        "1000 steps, 0 callbacks\n"
    );
}

#[test]
fn host_loop() {
    // A foreign loop drives steploop through poll_fd/time_until_next/run_once: the task's
    // timers, the host's own fd and the cross-thread calls all get through.
    assert_eq!(
        run("host_loop", &[]),
        "host frames: 3\nsteploop task ticks: 3\nremote calls run on the loop: 3\nhost turns: 4 or more\n"
    );
}
