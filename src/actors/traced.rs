//! Request spans across actor hops: [`Traced<M>`] carries a message together with the tracing
//! span it was sent from (the request's, made by `web::request_id`), and the receiving actor
//! handles it inside that span, so the events it logs on the request's behalf carry the
//! request's id. A mailbox hop loses the caller's span otherwise: the actor runs the handler
//! in its own task.
//!
//! An actor takes part with [`traced_handler!`] (`impl Handler<Traced<M>>` that enters the span
//! and delegates to its `Handler<M>`); senders wrap with [`Traced::new`]. A reply computed
//! later by a [`ResponseFuture`] runs in the span too; the asynchronous part of an
//! [`actix::ActorResponse`] does where the handler wraps it with [`in_current_span`]. With no
//! request span (a timer, a heartbeat) the span is empty and costs nothing.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix::prelude::*;
use tracing::{Instrument, Span};

/// A message and the span it was sent from.
#[derive(Debug, Clone)]
pub struct Traced<M> {
    pub msg: M,
    pub span: Span,
}

impl<M> Traced<M> {
    /// `msg` in the current span.
    pub fn new(msg: M) -> Self {
        Self {
            msg,
            span: Span::current(),
        }
    }
}

impl<M: Message> Message for Traced<M> {
    type Result = M::Result;
}

/// A handler's result that can finish its work in `span`.
pub trait InSpan {
    fn in_span(self, span: Span) -> Self;
}

impl<R: 'static> InSpan for ResponseFuture<R> {
    fn in_span(self, span: Span) -> Self {
        Box::pin(self.instrument(span))
    }
}

/// Results answered within the handler, which already ran in the span.
macro_rules! answered_at_once {
    ($($t:ty),* $(,)?) => {
        $(impl InSpan for $t { fn in_span(self, _: Span) -> Self { self } })*
    };
}
answered_at_once!((), bool);

impl<T, E> InSpan for Result<T, E> {
    fn in_span(self, _: Span) -> Self {
        self
    }
}

impl<A: Actor, R> InSpan for actix::ActorResponse<A, R> {
    /// Its asynchronous part is the handler's to wrap ([`in_current_span`]): it is opaque here.
    fn in_span(self, _: Span) -> Self {
        self
    }
}

/// An actor future that runs in the span that was current when it was made.
pub fn in_current_span<A: Actor, F: ActorFuture<A>>(fut: F) -> SpannedActorFuture<F> {
    SpannedActorFuture {
        fut,
        span: Span::current(),
    }
}

pin_project_lite::pin_project! {
    /// See [`in_current_span`].
    pub struct SpannedActorFuture<F> {
        #[pin]
        fut: F,
        span: Span,
    }
}

impl<A: Actor, F: ActorFuture<A>> ActorFuture<A> for SpannedActorFuture<F> {
    type Output = F::Output;

    fn poll(
        self: Pin<&mut Self>,
        act: &mut A,
        ctx: &mut A::Context,
        task: &mut Context<'_>,
    ) -> Poll<F::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        this.fut.poll(act, ctx, task)
    }
}

/// `impl Handler<Traced<$msg>> for $actor`: the span entered, then the actor's own
/// `Handler<$msg>`; a trace-level event names the actor that took the request's message.
#[macro_export]
macro_rules! traced_handler {
    ($actor:ty, $msg:ty) => {
        impl ::actix::Handler<$crate::actors::traced::Traced<$msg>> for $actor {
            type Result = <$actor as ::actix::Handler<$msg>>::Result;

            fn handle(
                &mut self,
                traced: $crate::actors::traced::Traced<$msg>,
                ctx: &mut Self::Context,
            ) -> Self::Result {
                let $crate::actors::traced::Traced { msg, span } = traced;
                let result = {
                    let _entered = span.enter();
                    ::tracing::trace!(
                        actor = stringify!($actor),
                        msg = stringify!($msg),
                        "request message received"
                    );
                    <$actor as ::actix::Handler<$msg>>::handle(self, msg, ctx)
                };
                $crate::actors::traced::InSpan::in_span(result, span)
            }
        }
    };
}
