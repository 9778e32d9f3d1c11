//! An offline evaluator of AWS IoT Core policy documents.
//!
//! "With this policy, can a device connected as client `sensor-1` publish to `things/sensor-1/telemetry`?"
//! AWS answers that only online (TestAuthorization, against a live account). This crate answers it from the
//! document alone, with AWS IoT's semantics as its developer guide documents them: the data-plane actions and
//! their resource types, IAM's `*` and `?` wildcards (MQTT's `+` and `#` are literal characters in a policy),
//! Allow and Deny with Deny winning and implicit deny otherwise, `NotAction` and `NotResource`, the policy
//! variables (`iot:ClientId`, the thing variables, which resolve only under the conditions AWS documents, the
//! certificate subject and issuer variables, `iot:DomainName`), and the condition operators jitp's templates and
//! AWS's examples use.
//!
//! Whatever it does not model (an operator, a key, a variable) or where AWS's documentation allows two readings
//! that answer differently, it says so: [`Decision::NotModelled`], never [`Decision::Allowed`]. The README lists
//! what is modelled, where AWS is ambiguous, and how each ambiguity is answered.
//!
//! ```
//! use jitp_policy_eval::{Action, Context, Decision, Policy, Request, evaluate};
//!
//! let policy = Policy::parse(r#"{
//!   "Version": "2012-10-17",
//!   "Statement": [{"Effect": "Allow", "Action": "iot:Publish",
//!                  "Resource": "arn:aws:iot:eu-west-1:123456789012:topic/things/${iot:ClientId}/*"}]
//! }"#)?;
//! let request = Request::new(Action::Publish, "arn:aws:iot:eu-west-1:123456789012:topic/things/sensor-1/telemetry")?;
//! let answer = evaluate(std::slice::from_ref(&policy), &request, &Context::new("sensor-1"));
//! assert_eq!(answer.decision, Decision::Allowed);
//! # Ok::<(), jitp_policy_eval::Error>(())
//! ```
//!
//! The crate depends on no other jitp crate and reads no certificate: the caller describes the connection
//! ([`Context`]).

mod condition;
mod context;
mod document;
mod error;
mod evaluate;
mod json;
mod pattern;
mod request;
mod variables;

pub use context::{Certificate, Context, DnField, MAX_CLIENT_ID_BYTES, Thing};
pub use document::{Effect, Policy, Statement};
pub use error::Error;
pub use evaluate::{
    Decision, Evaluation, ResolvedVariable, StatementRef, Unmodelled, VariableValue, evaluate, explain,
};
pub use request::{Account, Action, MAX_TOPIC_BYTES, Request, ResourceType};
