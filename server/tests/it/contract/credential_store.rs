//! `CredentialStore`: users, API tokens and browser sessions; hashes only, never plaintext.

use chrono::{DurationRound, TimeDelta, Utc};
use domain::Role;
use server::ports::{RepositoryError, TokenRecord, UserRecord, WebSessionRecord};
use server::storage::Store;

/// Now, at the microsecond precision both stores keep.
fn now() -> chrono::DateTime<Utc> {
    Utc::now()
        .duration_trunc(TimeDelta::microseconds(1))
        .unwrap()
}

fn user(name: &str, role: Role) -> UserRecord {
    let at = now();
    UserRecord {
        username: name.into(),
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$salt${name}"),
        role,
        created_at: at,
        updated_at: at,
    }
}

fn token(id: &str, role: Role) -> TokenRecord {
    TokenRecord {
        id: id.into(),
        name: format!("token {id}"),
        role,
        secret_hash: format!("{id:0>64}"),
        created_by: "cli".into(),
        created_at: now(),
        expires_at: None,
        revoked_at: None,
    }
}

pub async fn users_round_trip_and_names_are_unique(store: &Store) {
    let c = &store.credentials;
    assert_eq!(c.count_users().await.unwrap(), 0);
    let ada = user("ada", Role::Admin);
    c.insert_user(&ada).await.unwrap();
    c.insert_user(&user("bob", Role::Viewer)).await.unwrap();
    assert_eq!(c.user("ada").await.unwrap(), Some(ada.clone()));
    assert_eq!(c.user("nobody").await.unwrap(), None);
    assert_eq!(c.count_users().await.unwrap(), 2);
    let mut twin = user("ada", Role::Viewer);
    twin.password_hash = "other".into();
    let err = c.insert_user(&twin).await.unwrap_err();
    assert!(matches!(err, RepositoryError::Duplicate { .. }), "{err:?}");
    assert_eq!(
        c.user("ada").await.unwrap(),
        Some(ada),
        "the original is kept"
    );
    let names: Vec<_> = c
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| (u.username, u.role))
        .collect();
    assert_eq!(
        names,
        [("ada".into(), Role::Admin), ("bob".into(), Role::Viewer)]
    );
}

pub async fn updating_a_user_ends_their_browser_sessions(store: &Store) {
    let c = &store.credentials;
    c.insert_user(&user("ada", Role::Operator)).await.unwrap();
    c.insert_user(&user("bob", Role::Operator)).await.unwrap();
    let at = now();
    for (hash, name) in [("s-ada", "ada"), ("s-bob", "bob")] {
        c.insert_web_session(&WebSessionRecord {
            id_hash: hash.into(),
            username: name.into(),
            csrf: format!("csrf-{name}"),
            created_at: at,
            expires_at: at + TimeDelta::hours(1),
        })
        .await
        .unwrap();
    }
    assert!(c
        .update_user("ada", "new-hash", Role::Admin, now())
        .await
        .unwrap());
    let ada = c.user("ada").await.unwrap().unwrap();
    assert_eq!(
        (ada.password_hash.as_str(), ada.role),
        ("new-hash", Role::Admin)
    );
    assert_eq!(c.web_session("s-ada", now()).await.unwrap(), None);
    assert!(
        c.web_session("s-bob", now()).await.unwrap().is_some(),
        "others stay signed in"
    );
    assert!(!c
        .update_user("nobody", "h", Role::Viewer, now())
        .await
        .unwrap());
}

pub async fn tokens_round_trip_list_newest_first_and_revoke_once(store: &Store) {
    let c = &store.credentials;
    let mut first = token("aaaaaaaaaaaa", Role::Viewer);
    first.created_at = now() - TimeDelta::minutes(5);
    first.expires_at = Some(now() + TimeDelta::days(1));
    let second = token("bbbbbbbbbbbb", Role::Operator);
    c.insert_token(&first).await.unwrap();
    c.insert_token(&second).await.unwrap();
    assert_eq!(c.token("aaaaaaaaaaaa").await.unwrap(), Some(first.clone()));
    assert_eq!(c.token("cccccccccccc").await.unwrap(), None);
    let err = c
        .insert_token(&token("aaaaaaaaaaaa", Role::Admin))
        .await
        .unwrap_err();
    assert!(matches!(err, RepositoryError::Duplicate { .. }), "{err:?}");
    let ids: Vec<_> = c
        .list_tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids, ["bbbbbbbbbbbb", "aaaaaaaaaaaa"]);

    let at = now();
    assert!(c.revoke_token("aaaaaaaaaaaa", at).await.unwrap());
    assert!(!c
        .revoke_token("aaaaaaaaaaaa", at + TimeDelta::hours(1))
        .await
        .unwrap());
    assert!(!c.revoke_token("cccccccccccc", at).await.unwrap());
    let revoked = c.token("aaaaaaaaaaaa").await.unwrap().unwrap();
    assert_eq!(
        revoked.revoked_at,
        Some(at),
        "the first revocation time is kept"
    );
    assert!(!revoked.is_active(now()));
    assert!(c
        .token("bbbbbbbbbbbb")
        .await
        .unwrap()
        .unwrap()
        .is_active(now()));
}

pub async fn web_sessions_expire_and_are_purged(store: &Store) {
    let c = &store.credentials;
    c.insert_user(&user("ada", Role::Viewer)).await.unwrap();
    let at = now();
    let live = WebSessionRecord {
        id_hash: "live".into(),
        username: "ada".into(),
        csrf: "c1".into(),
        created_at: at,
        expires_at: at + TimeDelta::hours(1),
    };
    let stale = WebSessionRecord {
        id_hash: "stale".into(),
        expires_at: at - TimeDelta::seconds(1),
        ..live.clone()
    };
    c.insert_web_session(&live).await.unwrap();
    c.insert_web_session(&stale).await.unwrap();
    assert_eq!(
        c.web_session("live", now()).await.unwrap(),
        Some(live.clone())
    );
    assert_eq!(
        c.web_session("stale", now()).await.unwrap(),
        None,
        "expired"
    );
    assert_eq!(c.purge_web_sessions(now()).await.unwrap(), 1);
    c.delete_web_session("live").await.unwrap();
    assert_eq!(c.web_session("live", now()).await.unwrap(), None);
}
