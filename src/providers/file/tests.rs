use std::fs;

use super::*;

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: NAME}\n";

fn service(name: &str) -> String {
    SERVICE.replace("NAME", name)
}

fn names(set: &ManifestSet) -> Vec<String> {
    set.update(&SourceId::new("file"))
        .objects
        .iter()
        .map(|o| o.key().name.clone())
        .collect()
}

#[test]
fn reads_directories_recursively_and_skips_hidden_and_backup_files() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.yaml"), service("a")).unwrap();
    fs::create_dir(dir.path().join("sub")).unwrap();
    fs::write(dir.path().join("sub/b.yml"), service("b")).unwrap();
    fs::write(dir.path().join(".hidden.yaml"), service("hidden")).unwrap();
    fs::write(dir.path().join("c.yaml~"), service("backup")).unwrap();
    fs::write(dir.path().join("notes.txt"), "not yaml").unwrap();
    let mut set = ManifestSet::new(vec![dir.path().to_path_buf()]);
    assert!(set.rescan());
    assert_eq!(names(&set), ["a", "b"]);
    assert!(!set.rescan(), "nothing changed");
}

#[test]
fn a_broken_edit_keeps_the_last_good_objects_and_reports_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.yaml");
    fs::write(&file, service("a")).unwrap();
    let mut set = ManifestSet::new(vec![dir.path().to_path_buf()]);
    set.rescan();
    fs::write(&file, "apiVersion: v1\nkind: Service\nmetadata: {name: [broken\n").unwrap();
    assert!(set.rescan());
    let update = set.update(&SourceId::new("file"));
    assert_eq!(names(&set), ["a"]);
    assert_eq!(update.issues.len(), 1);
    assert!(update.issues[0].to_string().contains("a.yaml"), "{}", update.issues[0]);
    // Fixed again: the error goes away.
    fs::write(&file, service("a2")).unwrap();
    assert!(set.rescan());
    assert_eq!(names(&set), ["a2"]);
    assert!(set.update(&SourceId::new("file")).issues.is_empty());
}

#[test]
fn deleted_files_remove_their_objects() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.yaml"), service("a")).unwrap();
    fs::write(dir.path().join("b.yaml"), service("b")).unwrap();
    let mut set = ManifestSet::new(vec![dir.path().to_path_buf()]);
    set.rescan();
    fs::remove_file(dir.path().join("a.yaml")).unwrap();
    assert!(set.rescan());
    assert_eq!(names(&set), ["b"]);
}

#[test]
fn a_missing_root_is_an_issue() {
    let mut set = ManifestSet::new(vec![PathBuf::from("/nonexistent/vestibule/manifests")]);
    set.rescan();
    let update = set.update(&SourceId::new("file"));
    assert!(update.objects.is_empty());
    assert!(update.issues[0].message.contains("cannot read manifests path"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sends_an_update_after_an_atomic_rename() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.yaml"), service("a")).unwrap();
    let (tx, mut rx) = mpsc::channel(8);
    let _watcher = watch(vec![dir.path().to_path_buf()], SourceId::new("file"), tx).unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.objects.len(), 1);
    let tmp = dir.path().join(".b.yaml.tmp");
    fs::write(&tmp, service("b")).unwrap();
    fs::rename(&tmp, dir.path().join("b.yaml")).unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let names: Vec<_> = next.objects.iter().map(|o| o.key().name.clone()).collect();
    assert_eq!(names, ["a", "b"]);
}
