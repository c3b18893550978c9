//! The citizen's withdrawal (the consent's key destroyed), the holder's
//! revocation and the agency's confirmed deletion.

use super::*;

impl MyData {
    /// The citizen withdraws his consent: the hub's copy is destroyed at
    /// once (the consent's key and the packages, in one transaction), the
    /// agency is told to delete, and the holder revokes the credentials
    /// (now, or by the retry loop if its node is down).
    pub async fn withdraw_transfer(
        &self,
        ctx: &Ctx,
        id: civic_core::mydata::TransferId,
    ) -> Result<TransferView> {
        let (party, entry) = self
            .party(ctx, id, "mydata.transfer.withdraw", By::Citizen)
            .await?;
        let withdrawn = self
            .store
            .withdraw_transfer(id, &party, entry.clone())
            .await;
        self.as_party(withdrawn, entry).await?;
        self.state.events.notify_one();
        if let Err(e) = self.revoke_at_holder(id).await {
            tracing::warn!(transfer = id.0, error = %e, "revocation left for the retry loop");
        }
        self.transfer(ctx, id).await
    }

    /// Asks the holder to revoke a withdrawn transfer's credentials, and
    /// keeps its new signed status list.
    pub async fn revoke_at_holder(&self, id: civic_core::mydata::TransferId) -> Result<()> {
        let op = Ctx::local_operator();
        let entry = op.entry(
            "mydata.transfer.revoke",
            &format!("mydata-transfer:{id}"),
            Outcome::Allowed,
        );
        let (t, deliveries) = self
            .store
            .deliveries(id, &Party::Hub, false, entry.clone())
            .await?;
        if deliveries.is_empty() {
            self.store.mark_revoked(id, entry).await?;
            return Ok(());
        }
        // The node that issued them (the holder's, by name).
        let node = deliveries[0].node.clone();
        let (url, node_key) = self.records_node_named(&node).await?;
        let signed = mydata_grant(
            self.keys(),
            self.institution_ref(t.agency).await?.name,
            self.institution_ref(t.holder).await?.name,
            "the citizen's withdrawal of consent".into(),
            format!("mydata-transfer:{id}"),
            Question::Revocation {
                // A holder answers through one node; its indices.
                status_indices: deliveries
                    .iter()
                    .filter(|d| d.node == node)
                    .map(|d| d.status_index as u64)
                    .collect(),
            },
        );
        let list: StatusListReply = self
            .ask_holder(
                &url,
                REVOCATIONS_PATH,
                &node_key,
                "{}",
                Some(signed),
                "the holder's status list",
            )
            .await?;
        self.store
            .save_status_list(&node, &list.uri, &list.token)
            .await?;
        self.store.mark_revoked(id, entry).await?;
        Ok(())
    }

    /// Revokes every withdrawn transfer the holders have not revoked yet.
    pub async fn revoke_pending(&self) -> Result<usize> {
        let mut n = 0;
        for id in self.store.unrevoked().await? {
            match self.revoke_at_holder(id).await {
                Ok(()) => n += 1,
                Err(e) => tracing::warn!(transfer = id.0, error = %e, "revocation still pending"),
            }
        }
        Ok(n)
    }

    /// The agency confirms it deleted what it received of a withdrawn
    /// consent.
    pub async fn confirm_transfer_deletion(
        &self,
        ctx: &Ctx,
        id: civic_core::mydata::TransferId,
    ) -> Result<TransferView> {
        let (party, entry) = self
            .party(ctx, id, "mydata.transfer.deletion", By::Agency)
            .await?;
        let confirmed = self.store.confirm_deletion(id, &party, entry.clone()).await;
        self.as_party(confirmed, entry).await?;
        self.transfer(ctx, id).await
    }
}
