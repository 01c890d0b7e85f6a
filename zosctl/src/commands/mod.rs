//! One module per group of commands; each returns what it prints.

mod apply;
mod contracts;
mod grid;
mod group;
mod image;
mod keys;
mod network;

use crate::{
    cli::{
        Command, FarmCommand, GroupCommand, ImageCommand, KeyCommand, NetworkCommand, NodeCommand,
    },
    ctx::{Ctx, Out},
};

/// Runs `command`.
pub async fn run(ctx: &Ctx, command: Command) -> anyhow::Result<Out> {
    match command {
        Command::Key(KeyCommand::Generate { name, scheme }) => keys::generate(ctx, &name, scheme),
        Command::Key(KeyCommand::Import {
            name,
            mnemonic,
            uri,
            seed,
            scheme,
        }) => keys::import(ctx, &name, mnemonic, uri, seed, scheme),
        Command::Key(KeyCommand::List) => keys::list(ctx),
        Command::Farm(FarmCommand::Create { name }) => grid::farm_create(ctx, &name).await,
        Command::Farm(FarmCommand::Approve { farm, node }) => {
            grid::farm_approve(ctx, farm, &node).await
        }
        Command::Node(NodeCommand::List { farm }) => grid::node_list(ctx, farm.as_deref()).await,
        Command::Node(NodeCommand::Show { account }) => grid::node_show(ctx, &account).await,
        Command::Balance { account } => grid::balance(ctx, account.as_deref()).await,
        Command::Transfer { to, amount } => grid::transfer(ctx, &to, &amount).await,
        Command::Network(NetworkCommand::Show { name, owner }) => {
            network::show(ctx, &name, owner.as_deref()).await
        }
        Command::Apply(args) => apply::apply(ctx, args).await,
        Command::Get { owner } => contracts::get(ctx, owner.as_deref()).await,
        Command::Describe { id } => contracts::describe(ctx, id).await,
        Command::Delete { id, as_group } => contracts::delete(ctx, id, as_group.as_deref()).await,
        Command::Image(ImageCommand::Push {
            dirs,
            registry,
            repository,
            tag,
        }) => image::push(dirs, registry, repository, tag).await,
        Command::Group(GroupCommand::Create {
            name,
            members,
            threshold,
        }) => group::create(ctx, &name, &members, threshold),
        Command::Group(GroupCommand::List) => group::list(ctx),
        Command::Group(GroupCommand::Show { name }) => group::show(ctx, &name).await,
        Command::Group(GroupCommand::Pending { name }) => group::pending(ctx, &name).await,
        Command::Group(GroupCommand::Approve {
            name,
            call_hash,
            no_wait,
            wait_timeout,
            blind,
        }) => {
            let wait = (!no_wait).then_some(wait_timeout);
            group::approve(ctx, &name, &call_hash, wait, blind).await
        }
        Command::Group(GroupCommand::Reject { name, call_hash }) => {
            group::reject(ctx, &name, &call_hash).await
        }
    }
}
