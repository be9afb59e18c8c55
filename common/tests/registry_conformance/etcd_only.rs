//! What only the networked registry can show.

use std::time::Duration;

use orca_common::registry::Registry;
use orca_common::registry::etcd::{EtcdConfig, EtcdRegistry};
use orca_testkit::EtcdServer;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{SOON, ids, master, short_config, wait_watch, worker};

async fn connect(cfg: &EtcdConfig) -> EtcdRegistry {
    EtcdRegistry::connect(cfg.clone()).await.unwrap()
}

/// Waits until `lost` is true; returns when (deadline `SOON`).
async fn lost_at(mut lost: watch::Receiver<bool>) -> Instant {
    tokio::time::timeout(SOON, lost.wait_for(|l| *l))
        .await
        .expect("lease lost in time")
        .expect("lost sender alive");
    Instant::now()
}

/// Keepalives stop (etcd SIGKILLed, not restarted): the worker lease, the
/// master lease and the leadership are all given up within
/// `lease_ttl - fence_margin` (+ slack), i.e. before etcd could expire them,
/// but not at the first failed keepalive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holder_fences_itself_before_expiry() {
    let mut server = EtcdServer::start().await;
    let cfg = short_config(&server);
    let reg = connect(&cfg).await;
    let wl = reg.register_worker(worker("w1", 0)).await.unwrap();
    let ml = reg.register_master(master("m1")).await.unwrap();
    let leadership = reg.campaign(master("m1")).await.unwrap();

    let killed = Instant::now();
    server.kill();
    let (w, m, l) = tokio::join!(
        lost_at(wl.lost.clone()),
        lost_at(ml.lost.clone()),
        lost_at(leadership.lost.clone())
    );
    let window = cfg.lease_ttl - cfg.fence_margin;
    let earliest = window - cfg.keepalive_interval - Duration::from_millis(300);
    let latest = window + Duration::from_millis(500);
    assert!(
        latest < cfg.lease_ttl,
        "test timing must fence before expiry"
    );
    for (what, at) in [("worker", w), ("master", m), ("leader", l)] {
        let after = at - killed;
        assert!(
            after >= earliest && after <= latest,
            "{what} lease lost {after:?} after the kill; expected within [{earliest:?}, {latest:?}]"
        );
    }
}

/// etcd SIGKILLed and restarted within the fence window (lease_ttl 10 s):
/// no lease is lost, and both watches resume and see later changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_restart_loses_nothing_and_watches_resume() {
    let mut server = EtcdServer::start().await;
    let cfg = EtcdConfig {
        lease_ttl: Duration::from_secs(10),
        keepalive_interval: Duration::from_secs(1),
        fence_margin: Duration::from_secs(2),
        ..short_config(&server)
    };
    let holder = connect(&cfg).await;
    let observer = connect(&cfg).await;
    let wl = holder.register_worker(worker("w1", 0)).await.unwrap();
    let ml = holder.register_master(master("m1")).await.unwrap();
    let leadership = holder.campaign(master("m1")).await.unwrap();
    let mut workers = observer.watch_workers();
    let mut leader = observer.watch_leader();
    wait_watch(&mut workers, "w1 seen", |ws| ids(ws) == ["w1"]).await;
    wait_watch(&mut leader, "m1 seen", |l| l.is_some()).await;

    let killed = Instant::now();
    server.restart().await;
    let down_for = killed.elapsed();
    assert!(
        down_for < Duration::from_secs(5),
        "etcd restart took {down_for:?}"
    );

    // Later changes, made by a third client once etcd is back, are seen.
    let other = connect(&cfg).await;
    let wl2 = other.register_worker(worker("w2", 0)).await.unwrap();
    wait_watch(&mut workers, "w2 seen after restart", |ws| {
        ids(ws) == ["w1", "w2"]
    })
    .await;

    // No lease is lost: wait past the moment a holder without keepalives
    // would have given up.
    let give_up_by = killed + (cfg.lease_ttl - cfg.fence_margin) + Duration::from_secs(1);
    for (what, lost) in [
        ("worker", &wl.lost),
        ("master", &ml.lost),
        ("leader", &leadership.lost),
    ] {
        let mut lost = lost.clone();
        let r = tokio::time::timeout_at(give_up_by, lost.wait_for(|l| *l)).await;
        assert!(r.is_err(), "{what} lease lost across a short etcd restart");
    }
    assert_eq!(ids(&other.workers().await.unwrap()), ["w1", "w2"]);
    assert_eq!(holder.masters().await.unwrap(), vec![master("m1")]);

    // The leadership is still real: resigning hands over, the watch follows.
    leadership.resign();
    let next = other.campaign(master("m2")).await.unwrap();
    assert!(next.epoch > leadership.epoch);
    let seen = wait_watch(&mut leader, "m2 seen", |l| {
        l.as_ref().is_some_and(|l| l.master.id == "m2")
    })
    .await
    .unwrap();
    assert_eq!(seen.epoch, next.epoch);
    wl.revoke();
    wait_watch(&mut workers, "w1 revoked", |ws| ids(ws) == ["w2"]).await;
    drop(wl2);
}

/// A holder that dies without revoking (its registry dropped): its worker key
/// disappears after the TTL, watchers see it, and a standby takes over with a
/// higher epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_holder_expires_and_standby_takes_over() {
    let server = EtcdServer::start().await;
    let cfg = short_config(&server);
    let holder = connect(&cfg).await;
    let observer = connect(&cfg).await;
    let standby = std::sync::Arc::new(connect(&cfg).await);
    let wl = holder.register_worker(worker("w1", 0)).await.unwrap();
    let leadership = holder.campaign(master("m1")).await.unwrap();
    let pending = {
        let standby = standby.clone();
        tokio::spawn(async move { standby.campaign(master("m2")).await.unwrap() })
    };
    let mut workers = observer.watch_workers();
    let mut leader = observer.watch_leader();
    wait_watch(&mut workers, "w1 seen", |ws| ids(ws) == ["w1"]).await;

    let died = Instant::now();
    drop(holder);
    assert!(*wl.lost.borrow() || lost_at(wl.lost.clone()).await >= died);
    lost_at(leadership.lost.clone()).await;

    wait_watch(&mut workers, "dead worker expired", |ws| ws.is_empty()).await;
    let after = died.elapsed();
    // Expired by etcd (not revoked): not before TTL minus one keepalive period.
    assert!(
        after >= cfg.lease_ttl - cfg.keepalive_interval - Duration::from_millis(200),
        "worker key gone after {after:?}: revoked, not expired?"
    );
    let next = tokio::time::timeout(SOON, pending).await.unwrap().unwrap();
    assert!(next.epoch > leadership.epoch);
    let seen = wait_watch(&mut leader, "standby leads", |l| {
        l.as_ref().is_some_and(|l| l.master.id == "m2")
    })
    .await
    .unwrap();
    assert_eq!(seen.epoch, next.epoch);
    next.resign();
    drop(server);
}
