//! Iteration tests on a scripted network (see [`fake`]).

mod fake;
mod prop;
mod scenarios;
mod world;
