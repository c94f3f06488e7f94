//! The interface and its addresses, through rtnetlink.

use std::net::IpAddr;

use futures_util::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::LinkAttribute;
use rtnetlink::Handle;
use tokio::task::JoinHandle;

use super::packet::Mac;

pub struct Link {
    handle: Handle,
    connection: JoinHandle<()>,
    pub index: u32,
    pub mac: Mac,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl Link {
    /// Finds `interface`; the error names it.
    pub async fn open(interface: &str) -> Result<Link, String> {
        let (connection, handle, _) = rtnetlink::new_connection()
            .map_err(|e| format!("cannot open a netlink socket: {e}"))?;
        let connection = tokio::spawn(connection);
        let found = handle
            .link()
            .get()
            .match_name(interface.to_string())
            .execute()
            .try_next()
            .await
            .map_err(|e| format!("no interface {interface:?}: {}", describe(&e)))?
            .ok_or_else(|| format!("no interface {interface:?}"))?;
        let mac = found
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::Address(m) if m.len() == 6 => m[..6].try_into().ok(),
                _ => None,
            })
            .ok_or_else(|| format!("interface {interface:?} has no Ethernet address"))?;
        Ok(Link {
            index: found.header.index,
            mac,
            handle,
            connection,
        })
    }

    /// The interface's entry for `address`, if it is configured.
    async fn find(&self, address: IpAddr) -> Result<Option<AddressMessage>, String> {
        self.handle
            .address()
            .get()
            .set_link_index_filter(self.index)
            .set_address_filter(address)
            .execute()
            .try_next()
            .await
            .map_err(|e| describe(&e))
    }

    /// Whether `address` is configured on the interface.
    pub async fn has(&self, address: IpAddr) -> Result<bool, String> {
        Ok(self.find(address).await?.is_some())
    }

    /// Adds `address/prefix_len`; IPv6 without duplicate address detection (we probed).
    pub async fn add(&self, address: IpAddr, prefix_len: u8) -> Result<(), String> {
        let mut request = self.handle.address().add(self.index, address, prefix_len);
        if address.is_ipv6() {
            request
                .message_mut()
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        request.execute().await.map_err(|e| describe(&e))
    }

    /// Removes `address` if it is configured; true when it was.
    pub async fn remove(&self, address: IpAddr) -> Result<bool, String> {
        match self.find(address).await? {
            Some(message) => {
                self.handle
                    .address()
                    .del(message)
                    .execute()
                    .await
                    .map_err(|e| describe(&e))?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

fn describe(e: &rtnetlink::Error) -> String {
    match e {
        rtnetlink::Error::NetlinkError(m) => match m.code {
            Some(code) => std::io::Error::from_raw_os_error(-code.get()).to_string(),
            None => m.to_string(),
        },
        other => other.to_string(),
    }
}
