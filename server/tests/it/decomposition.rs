//! `TaskDecompositionService::decompose_and_store` against a real SQLite store: every task of the
//! tree is inserted in one commit and reads back equal, with its subtasks and dependencies.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use server::application::{
    DecompositionError, DecompositionOptions, TaskDecompositionService, TemplateLibrary,
};
use server::ports::{Change, ChangeSet, Committed, RepositoryError, UnitOfWork};
use server::storage::{PoolSettings, Store};

use crate::support;

const PAYMENTS: &str =
    "Build a payments microservice with a REST API, a Postgres schema and an admin UI";

async fn sqlite() -> (Store, tempfile::TempDir) {
    support::store::sqlite_with(PoolSettings {
        max_connections: 5,
        acquire_timeout: std::time::Duration::from_secs(10),
    })
    .await
}

/// Passes commits through to the store, counting them and the task inserts they carry.
struct Counting {
    inner: Arc<dyn UnitOfWork>,
    commits: std::sync::Mutex<Vec<usize>>,
}

#[async_trait]
impl UnitOfWork for Counting {
    async fn commit(&self, changes: ChangeSet) -> Result<Committed, RepositoryError> {
        let inserts = changes
            .changes()
            .iter()
            .filter(|c| matches!(c, Change::InsertTask(_)))
            .count();
        self.commits.lock().unwrap().push(inserts);
        self.inner.commit(changes).await
    }
}

#[tokio::test]
async fn decompose_and_store_persists_every_task_in_one_commit() {
    let (store, _dir) = sqlite().await;
    let counting = Arc::new(Counting {
        inner: store.unit_of_work.clone(),
        commits: Default::default(),
    });
    let service = TaskDecompositionService::new(counting.clone(), TemplateLibrary::builtin());
    let stored = service
        .decompose_and_store(PAYMENTS, &DecompositionOptions::default())
        .await
        .unwrap();

    assert_eq!(*counting.commits.lock().unwrap(), [stored.tasks.len()]);
    assert!(stored.tasks.len() > 8, "{}", stored.render());
    let ids: BTreeSet<_> = stored.tasks.iter().map(|t| t.id()).collect();
    for task in &stored.tasks {
        assert_eq!(task.version(), 1);
        let read = store
            .tasks
            .get(task.id())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("task {} was not stored", task.id()));
        assert_eq!(&read, task);
        assert!(read.dependencies().iter().all(|d| ids.contains(d)));
    }
    let root = store.tasks.get(stored.root).await.unwrap().unwrap();
    assert_eq!(root.title().as_str(), PAYMENTS);
    assert_eq!(root.subtasks(), stored.root_task().subtasks());
    println!("{}", stored.render());
}

#[tokio::test]
async fn a_rejected_requirement_stores_nothing() {
    let (store, _dir) = sqlite().await;
    let counting = Arc::new(Counting {
        inner: store.unit_of_work.clone(),
        commits: Default::default(),
    });
    let service = TaskDecompositionService::new(counting.clone(), TemplateLibrary::builtin());
    let err = service
        .decompose_and_store("   ", &DecompositionOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, DecompositionError::Invalid(ref e) if e.field == "requirement"));
    assert!(counting.commits.lock().unwrap().is_empty());
}
