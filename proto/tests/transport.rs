//! The in-process transport: a client of a registered URL calls the
//! generated server directly, with the server's own handler and errors; a
//! dropped registration fails calls as a stopped server would.

use std::time::Duration;

use orca_proto::transport::{LocalRoutes, LocalService, Transport};
use orca_proto::v1::master_service_client::MasterServiceClient;
use orca_proto::v1::master_service_server::{MasterService, MasterServiceServer};
use orca_proto::v1::{
    NudgeRequest, NudgeResponse, ReportTaskEventRequest, ReportTaskEventResponse,
    ShipTaskLogRequest, ShipTaskLogResponse, ShipTaskLogsRequest, ShipTaskLogsResponse,
};
use tonic::{Request, Response, Status};

/// Answers nudges; reports take `delay`; ships fail with a status.
struct Stub {
    delay: Duration,
}

#[tonic::async_trait]
impl MasterService for Stub {
    async fn report_task_event(
        &self,
        _: Request<ReportTaskEventRequest>,
    ) -> Result<Response<ReportTaskEventResponse>, Status> {
        tokio::time::sleep(self.delay).await;
        Ok(Response::new(ReportTaskEventResponse {
            acknowledged: true,
        }))
    }

    async fn nudge(&self, _: Request<NudgeRequest>) -> Result<Response<NudgeResponse>, Status> {
        Ok(Response::new(NudgeResponse { leader: true }))
    }

    async fn ship_task_log(
        &self,
        _: Request<ShipTaskLogRequest>,
    ) -> Result<Response<ShipTaskLogResponse>, Status> {
        Err(Status::unimplemented("no"))
    }

    async fn ship_task_logs(
        &self,
        request: Request<ShipTaskLogsRequest>,
    ) -> Result<Response<ShipTaskLogsResponse>, Status> {
        let n = request.into_inner().logs.len();
        Err(Status::unavailable(format!("{n} logs refused")))
    }
}

fn service(delay: Duration) -> LocalService {
    LocalService::new(MasterServiceServer::new(Stub { delay }))
}

fn client(routes: &LocalRoutes, url: &str) -> MasterServiceClient<Transport> {
    let local = routes.get(url).expect("registered");
    MasterServiceClient::new(Transport::Local(local))
}

#[tokio::test]
async fn calls_reach_the_server_in_process_until_unregistered() {
    let routes = LocalRoutes::default();
    let url = "http://127.0.0.1:1";
    assert!(routes.get(url).is_none());
    let registration = routes.register(url, service(Duration::ZERO));
    let mut c = client(&routes, url);
    assert!(c.nudge(NudgeRequest {}).await.unwrap().into_inner().leader);
    // The handler's own status comes back as it would over the network.
    let err = c
        .ship_task_logs(ShipTaskLogsRequest {
            logs: vec![ShipTaskLogRequest::default(); 3],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert_eq!(err.message(), "3 logs refused");

    drop(registration);
    assert!(routes.get(url).is_none(), "new clients go over the network");
    let err = c.nudge(NudgeRequest {}).await.unwrap_err();
    assert!(err.message().contains("stopped"), "{err}");
}

#[tokio::test]
async fn a_new_registration_of_a_url_replaces_the_old_one() {
    let routes = LocalRoutes::default();
    let url = "http://127.0.0.1:2";
    let first = routes.register(url, service(Duration::ZERO));
    let mut old = client(&routes, url);
    let _second = routes.register(url, service(Duration::ZERO));
    assert!(
        old.nudge(NudgeRequest {}).await.is_err(),
        "the old server is closed"
    );
    let mut new = client(&routes, url);
    // Dropping the replaced registration leaves the new one in place.
    drop(first);
    assert!(new.nudge(NudgeRequest {}).await.is_ok());
    assert!(routes.get(url).is_some());
}

#[tokio::test]
async fn a_call_without_an_answer_in_time_fails() {
    let routes = LocalRoutes::default();
    let url = "http://127.0.0.1:3";
    let _r = routes.register(url, service(Duration::from_secs(30)));
    let local = routes.get(url).expect("registered");
    let mut c = MasterServiceClient::new(Transport::Local(
        local.with_timeout(Duration::from_millis(50)),
    ));
    let err = c
        .report_task_event(ReportTaskEventRequest { event: None })
        .await
        .unwrap_err();
    assert!(err.message().contains("timed out"), "{err}");
    // Calls that answer in time still work.
    assert!(c.nudge(NudgeRequest {}).await.is_ok());
}
