//! `TaskRepository`: the decomposition tree with ordered subtasks and dependency edges.

use chrono::Duration;
use domain::{AgentCapability, PageRequest, Task, TaskComplexity, TaskFilter, TaskId, TaskStatus};
use server::ports::{ChangeSet, EntityKey, RepositoryError};
use server::storage::Store;
use uuid::Uuid;

use super::seed_tasks;
use crate::support::factories::{now, TaskFactory};

async fn list_ids(store: &Store, filter: &TaskFilter) -> Vec<TaskId> {
    let page = store
        .tasks
        .list(filter, &PageRequest::first(100).unwrap())
        .await
        .unwrap();
    page.items.iter().map(Task::id).collect()
}

/// A parent with three ordered children, the third depending on the first two.
fn tree() -> (Task, [Task; 3]) {
    let t0 = now();
    let parent_f = TaskFactory::new()
        .title("build the service")
        .complexity(TaskComplexity::Complex)
        .created_at(t0);
    let parent_id = parent_f.id();
    let a = TaskFactory::new()
        .title("schema")
        .parent(parent_id)
        .capabilities(&[AgentCapability::Database])
        .created_at(t0 + Duration::seconds(1))
        .build();
    let b = TaskFactory::new()
        .title("api")
        .parent(parent_id)
        .capabilities(&[AgentCapability::Backend, AgentCapability::Security])
        .created_at(t0 + Duration::seconds(2))
        .build();
    let c = TaskFactory::new()
        .title("tests")
        .parent(parent_id)
        .depends_on(&[a.id(), b.id()])
        .capabilities(&[AgentCapability::Testing])
        .created_at(t0 + Duration::seconds(3))
        .build();
    // Listed in an order that is not the id order, to prove order is kept, not sorted.
    let parent = parent_f.subtasks(&[c.id(), a.id(), b.id()]).build();
    (parent, [a, b, c])
}

pub async fn a_task_tree_round_trips_with_order_and_edges(store: &Store) {
    let (parent, [a, b, c]) = tree();
    // Children before their parent: foreign keys are checked at commit, not per statement.
    seed_tasks(store, &[&c, &a, &b, &parent]).await;
    let got = store.tasks.get(parent.id()).await.unwrap().expect("parent");
    assert_eq!(got, parent.clone().with_version(1));
    assert_eq!(got.subtasks(), &[c.id(), a.id(), b.id()]);
    let got_c = store.tasks.get(c.id()).await.unwrap().expect("child");
    assert_eq!(got_c, c.clone().with_version(1));
    assert_eq!(got_c.dependencies().len(), 2);
    assert_eq!(got_c.parent(), Some(parent.id()));
}

pub async fn tasks_list_by_parent_roots_and_status(store: &Store) {
    let (parent, [a, b, c]) = tree();
    seed_tasks(store, &[&parent, &a, &b, &c]).await;
    let children = TaskFilter {
        parent: Some(parent.id()),
        ..Default::default()
    };
    assert_eq!(
        list_ids(store, &children).await,
        vec![c.id(), b.id(), a.id()]
    );
    let roots = TaskFilter {
        roots_only: true,
        ..Default::default()
    };
    assert_eq!(list_ids(store, &roots).await, vec![parent.id()]);

    let mut ready = store.tasks.get(a.id()).await.unwrap().unwrap();
    ready.transition_to(TaskStatus::Ready, now()).unwrap();
    let mut changes = ChangeSet::new();
    changes.update_task(&ready);
    store.unit_of_work.commit(changes).await.unwrap();
    let only_ready = TaskFilter {
        status: Some(TaskStatus::Ready),
        ..Default::default()
    };
    assert_eq!(list_ids(store, &only_ready).await, vec![a.id()]);
    assert_eq!(list_ids(store, &TaskFilter::default()).await.len(), 4);
}

pub async fn an_update_replaces_the_edges(store: &Store) {
    let (parent, [a, b, c]) = tree();
    seed_tasks(store, &[&parent, &a, &b, &c]).await;
    let d = TaskFactory::new().parent(parent.id()).build();
    let mut parent_now = store.tasks.get(parent.id()).await.unwrap().unwrap();
    parent_now.add_subtask(d.id(), now()).unwrap();
    let mut b_now = store.tasks.get(b.id()).await.unwrap().unwrap();
    b_now.add_dependency(a.id(), now()).unwrap();

    let mut changes = ChangeSet::new();
    changes
        .insert_task(&d)
        .update_task(&parent_now)
        .update_task(&b_now);
    let committed = store.unit_of_work.commit(changes).await.unwrap();
    assert_eq!(committed.version_of(EntityKey::Task(parent.id())), Some(2));

    let got = store.tasks.get(parent.id()).await.unwrap().unwrap();
    assert_eq!(got.subtasks(), &[c.id(), a.id(), b.id(), d.id()]);
    let got_b = store.tasks.get(b.id()).await.unwrap().unwrap();
    assert!(got_b.dependencies().contains(&a.id()));
    assert_eq!(got_b.version(), 2);
}

pub async fn a_dangling_edge_fails_the_commit_and_writes_nothing(store: &Store) {
    let ghost = TaskId::from_uuid(Uuid::new_v4());
    let orphan = TaskFactory::new().depends_on(&[ghost]).build();
    let mut changes = ChangeSet::new();
    changes.insert_task(&orphan);
    let err = store.unit_of_work.commit(changes).await.unwrap_err();
    assert!(
        matches!(err, RepositoryError::NotFound(EntityKey::Task(id)) if id == ghost),
        "{err:?}"
    );
    assert!(store
        .tasks
        .get_including_deleted(orphan.id())
        .await
        .unwrap()
        .is_none());
}

pub async fn soft_deleted_tasks_vanish_and_can_be_restored(store: &Store) {
    let task = TaskFactory::new().build();
    seed_tasks(store, &[&task]).await;
    let mut t = store.tasks.get(task.id()).await.unwrap().unwrap();
    t.mark_deleted(now()).unwrap();
    let mut changes = ChangeSet::new();
    changes.update_task(&t);
    store.unit_of_work.commit(changes).await.unwrap();
    assert!(store.tasks.get(task.id()).await.unwrap().is_none());
    assert!(list_ids(store, &TaskFilter::default()).await.is_empty());

    let mut t = store
        .tasks
        .get_including_deleted(task.id())
        .await
        .unwrap()
        .unwrap();
    t.restore(now());
    let mut changes = ChangeSet::new();
    changes.update_task(&t);
    store.unit_of_work.commit(changes).await.unwrap();
    assert_eq!(
        list_ids(store, &TaskFilter::default()).await,
        vec![task.id()]
    );
}

pub async fn task_pages_walk_every_task_once(store: &Store) {
    let t0 = now();
    let tasks: Vec<Task> = (0..5)
        .map(|i| {
            TaskFactory::new()
                .created_at(t0 - Duration::seconds(i))
                .build()
        })
        .collect();
    let refs: Vec<&Task> = tasks.iter().collect();
    seed_tasks(store, &refs).await;
    let mut walked = Vec::new();
    let mut page = PageRequest::first(2).unwrap();
    loop {
        let got = store
            .tasks
            .list(&TaskFilter::default(), &page)
            .await
            .unwrap();
        walked.extend(got.items.iter().map(Task::id));
        match got.next {
            Some(c) => page = PageRequest::new(2, Some(c)).unwrap(),
            None => break,
        }
    }
    let expected: Vec<TaskId> = tasks.iter().map(Task::id).collect();
    assert_eq!(walked, expected);
}
