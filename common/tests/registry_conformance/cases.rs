//! Test bodies shared by every registry implementation.

use std::time::Duration;

use orca_common::registry::Leadership;
use tokio::sync::mpsc;

use super::{Harness, SOON, eventually, ids, master, wait_watch, worker};

/// A negative check: nothing arrives on `rx` within this long.
const QUIET: Duration = Duration::from_millis(700);

pub async fn workers_register_list_update_revoke(h: Harness) {
    let reg = h.client().await;
    let lease1 = reg.register_worker(worker("w1", 0)).await.unwrap();
    let lease2 = reg.register_worker(worker("w2", 0)).await.unwrap();
    // Visible as soon as registration returns.
    assert_eq!(ids(&reg.workers().await.unwrap()), ["w1", "w2"]);
    assert_eq!(reg.workers().await.unwrap()[0], worker("w1", 0));

    lease1.update(worker("w1", 3));
    eventually("update visible", || async {
        reg.workers().await.unwrap()[0].running == 3
    })
    .await;

    lease1.revoke();
    assert!(*lease1.lost.borrow(), "revoke marks the lease lost at once");
    eventually("revoked worker gone", || async {
        ids(&reg.workers().await.unwrap()) == ["w2"]
    })
    .await;
    assert!(!*lease2.lost.borrow());
    lease2.revoke();
    eventually("all gone", || async {
        reg.workers().await.unwrap().is_empty()
    })
    .await;
}

pub async fn watch_workers_follows_every_change(h: Harness) {
    let holder = h.client().await;
    let observer = h.client().await;
    let mut rx = observer.watch_workers();
    assert!(rx.borrow().is_empty());

    let l1 = holder.register_worker(worker("w1", 0)).await.unwrap();
    wait_watch(&mut rx, "w1 registered", |ws| ids(ws) == ["w1"]).await;
    let l2 = holder.register_worker(worker("w2", 0)).await.unwrap();
    wait_watch(&mut rx, "w2 registered", |ws| ids(ws) == ["w1", "w2"]).await;
    l2.update(worker("w2", 2));
    let ws = wait_watch(&mut rx, "w2 updated", |ws| {
        ws.len() == 2 && ws[1].running == 2
    })
    .await;
    assert_eq!(ws, vec![worker("w1", 0), worker("w2", 2)]);
    l1.revoke();
    wait_watch(&mut rx, "w1 revoked", |ws| ids(ws) == ["w2"]).await;
    l2.revoke();
    wait_watch(&mut rx, "w2 revoked", |ws| ws.is_empty()).await;
}

pub async fn masters_register_list_revoke(h: Harness) {
    let a = h.client().await;
    let b = h.client().await;
    let la = a.register_master(master("m1")).await.unwrap();
    let lb = b.register_master(master("m2")).await.unwrap();
    assert_eq!(a.masters().await.unwrap(), vec![master("m1"), master("m2")]);
    la.revoke();
    assert!(*la.lost.borrow());
    eventually("revoked master gone", || async {
        b.masters().await.unwrap() == vec![master("m2")]
    })
    .await;
    assert!(!*lb.lost.borrow());
    lb.revoke();
    eventually("all masters gone", || async {
        a.masters().await.unwrap().is_empty()
    })
    .await;
}

type Won = (usize, Leadership);

async fn next_winner(rx: &mut mpsc::UnboundedReceiver<Won>) -> Won {
    tokio::time::timeout(SOON, rx.recv())
        .await
        .expect("a campaigner is elected in time")
        .expect("campaigners alive")
}

async fn assert_no_winner(rx: &mut mpsc::UnboundedReceiver<Won>) {
    if let Ok(Some((i, _))) = tokio::time::timeout(QUIET, rx.recv()).await {
        panic!("campaigner m{i} elected while another leader holds");
    }
}

pub async fn exactly_one_leader_among_campaigners(h: Harness) {
    let clients = [h.client().await, h.client().await, h.client().await];
    let (tx, mut rx) = mpsc::unbounded_channel();
    for (i, c) in clients.iter().enumerate() {
        let (c, tx) = (c.clone(), tx.clone());
        tokio::spawn(async move {
            let won = c.campaign(master(&format!("m{i}"))).await.unwrap();
            let _ = tx.send((i, won));
        });
    }
    let mut seen = Vec::new();
    let mut last_epoch = 0;
    for round in 0..3 {
        let (i, leadership) = next_winner(&mut rx).await;
        assert!(!seen.contains(&i), "m{i} elected twice");
        assert!(leadership.epoch > last_epoch, "epochs strictly increase");
        assert!(!*leadership.lost.borrow());
        let mut leader = clients[0].watch_leader();
        let info = wait_watch(&mut leader, "leader visible", |l| {
            l.as_ref().is_some_and(|l| l.epoch == leadership.epoch)
        })
        .await
        .unwrap();
        assert_eq!(info.master, master(&format!("m{i}")));
        if round < 2 {
            assert_no_winner(&mut rx).await;
        }
        seen.push(i);
        last_epoch = leadership.epoch;
        leadership.resign();
        assert!(
            *leadership.lost.borrow(),
            "resign marks leadership lost at once"
        );
    }
}

pub async fn resign_hands_over_with_increasing_epochs(h: Harness) {
    let a = h.client().await;
    let b = h.client().await;
    let la = a.campaign(master("a")).await.unwrap();
    let b2 = b.clone();
    let pending_b = tokio::spawn(async move { b2.campaign(master("b")).await.unwrap() });
    la.resign();
    let lb = tokio::time::timeout(SOON, pending_b)
        .await
        .unwrap()
        .unwrap();
    assert!(lb.epoch > la.epoch);
    assert!(*la.lost.borrow() && !*lb.lost.borrow());

    let a2 = a.clone();
    let pending_a = tokio::spawn(async move { a2.campaign(master("a")).await.unwrap() });
    lb.resign();
    let la2 = tokio::time::timeout(SOON, pending_a)
        .await
        .unwrap()
        .unwrap();
    assert!(la2.epoch > lb.epoch);
    la2.resign();
}

pub async fn watch_leader_follows(h: Harness) {
    let a = h.client().await;
    let b = h.client().await;
    let observer = h.client().await;
    let mut rx = observer.watch_leader();
    assert!(rx.borrow().is_none());

    let la = a.campaign(master("a")).await.unwrap();
    let seen = wait_watch(&mut rx, "a leads", |l| l.is_some())
        .await
        .unwrap();
    assert_eq!((seen.master, seen.epoch), (master("a"), la.epoch));

    let b2 = b.clone();
    let pending_b = tokio::spawn(async move { b2.campaign(master("b")).await.unwrap() });
    la.resign();
    let lb = tokio::time::timeout(SOON, pending_b)
        .await
        .unwrap()
        .unwrap();
    let seen = wait_watch(&mut rx, "b leads", |l| {
        l.as_ref().is_some_and(|l| l.master.id == "b")
    })
    .await
    .unwrap();
    assert_eq!(seen.epoch, lb.epoch);

    lb.resign();
    wait_watch(&mut rx, "no leader after the last resign", |l| l.is_none()).await;
}
