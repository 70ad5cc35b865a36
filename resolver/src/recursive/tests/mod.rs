//! Iteration tests on a scripted network (see [`fake`]).

mod fake;
mod scenarios;
mod world;
