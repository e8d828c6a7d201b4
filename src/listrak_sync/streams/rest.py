"""The REST streams: what Listrak's Email REST API (v1) adds beside the nine SOAP tables.

Columns are the API's JSON fields, named as it names them and in its key order
(docs/rest-api.md); the route's ids (``listId``, ``messageId``, ...) are stamped on every row
first (:attr:`Stream.path_keys`). Dates come without an offset, on the service's clock, as the
SOAP API's do. Keys never collapse two distinct rows: an id the API scopes to its parent
(a link within a message) keeps the parent's ids in the key.

``rest_lists`` and ``rest_messages`` are read only as parents (the SOAP ``lists`` and
``messages`` tables hold lists and messages); the Singer tap's 2.x mode emits them as its
``lists`` and ``messages`` streams.
"""

from __future__ import annotations

from listrak_sync.streams.model import Column, ColumnType, RequestKind, Stream

INT, T, B, F, TS, J = (ColumnType.INT, ColumnType.TEXT, ColumnType.BOOL, ColumnType.FLOAT,
                       ColumnType.TIMESTAMP, ColumnType.JSON)


def _c(name: str, type_: ColumnType, description: str, *, nullable: bool = True) -> Column:
    return Column(name, type_, description, (), nullable)


LIST_ID = _c("listId", INT, "The list's ID (the SOAP ListID).", nullable=False)
MESSAGE_ID = _c("messageId", INT, "The message's ID (the SOAP MsgID).", nullable=False)
CONVERSATION_ID = _c("conversationId", INT, "The conversation's ID.", nullable=False)
LINK_ID = _c("linkId", INT, "The link's ID, unique within its message.", nullable=False)
TRANSACTIONAL_ID = _c("transactionalMessageId", INT, "The transactional message's ID.", nullable=False)
GROUP_ID = _c("segmentationFieldGroupId", INT, "The profile-field group's ID.", nullable=False)
EMAIL = _c("emailAddress", T, "The contact's email address.")

_LIST = (
    LIST_ID,
    _c("listName", T, "The list's name."),
    _c("folderId", INT, "The folder holding the list (0: none)."),
    _c("ipPoolId", INT, "The sending IP pool (the SOAP Vmta.VmtaID)."),
    _c("bounceDomainAlias", T, "Custom domain of bounce addresses."),
    _c("bounceHandling", T, "None, Standard or Aggressive."),
    _c("bounceUnsubscribeCount", INT, "Bounces tolerated before a contact is unsubscribed."),
    _c("createDate", TS, "When the list was created."),
    *(_c(f"enable{flag}", B, f"{what} on or off.") for flag, what in (
        ("BrowserLink", "The view-in-browser link"), ("DoubleOptIn", "Double opt-in"),
        ("DynamicContent", "Dynamic content"), ("GoogleAnalytics", "Google Analytics"),
        ("Internationalization", "Internationalization"), ("ListHygiene", "List hygiene"),
        ("ListRemovalHeader", "The unsubscribe header"), ("ListRemovalLink", "The automatic unsubscribe link"),
        ("ListrakAnalytics", "Listrak analytics"), ("SpamScorePersonalization", "Spam-score personalization"),
        ("ToNamePersonalization", "To-name personalization"),
        ("UniversalEmailKeySetting", "The universal email key on links"))),
    _c("fromEmail", T, "Default sender address."),
    _c("fromName", T, "Default sender name."),
    _c("googleTrackingDomains", ColumnType.TEXT_LIST, "Google Analytics tracking domains."),
    _c("linkDomainAlias", T, "Custom domain of tracked links."),
    _c("mediaDomainAlias", T, "Deprecated by Listrak in 2020; expect null."),
)
_MESSAGE = (
    MESSAGE_ID,
    _c("sendDate", TS, "When the message was, or will be, sent (null while scheduled or a draft)."),
    _c("messageStatus", T, "Sent or scheduled (free text)."),
    _c("campaignId", INT, "The message's campaign (0: none).", nullable=False),
    _c("externalCampaignId", T, "The customer's own campaign identifier."),
    _c("subject", T, "The subject line."),
)
_MESSAGE_EXTENDED = (
    MESSAGE_ID,
    _MESSAGE[1],
    _MESSAGE[2],
    _c("enableUniversalEmailKeySetting", B, "Whether links carry the universal email key.", nullable=False),
    _MESSAGE[3],
    _c("bodyHtml", T, "The HTML body."),
    _c("bodyText", T, "The plain-text body."),
    _c("codePage", INT, "The character set's code page.", nullable=False),
    _c("enablePassalong", B, "Whether forward-to-a-friend is on.", nullable=False),
    _c("enableTracking", B, "Whether open and link tracking is on.", nullable=False),
    _MESSAGE[4],
    _c("fromEmail", T, "The sender's address."),
    _c("fromName", T, "The sender's name."),
    _c("googleAnalyticsCampaignName", T, "Google Analytics campaign name."),
    _c("googleAnalyticsCampaignContent", T, "Google Analytics campaign content."),
    _c("replyEmail", T, "The reply-to address."),
    _c("savedAudienceId", INT, "The saved audience the recipients came from (0: none).", nullable=False),
    _MESSAGE[5],
    _c("toName", T, "The To display name."),
)
_ACTIVITY = (
    _c("abuse", B, "The contact reported the message as abuse.", nullable=False),
    _c("activityDate", TS, "The contact's first activity on the message (null: none)."),
    _c("bounce", B, "Delivery to the contact bounced.", nullable=False),
    _c("bounceReason", T, "Why it bounced."),
    _c("click", B, "The contact clicked at least once.", nullable=False),
    _c("clickCount", INT, "The contact's clicks.", nullable=False),
    EMAIL,
    _c("open", B, "The contact opened the message.", nullable=False),
    _c("orderTotal", F, "Order revenue attributed to the message for the contact.", nullable=False),
    _c("read", B, "The contact read the message.", nullable=False),
    _c("sendDate", TS, "When the message was sent to the contact."),
    _c("unsubscribe", B, "The contact unsubscribed through the message.", nullable=False),
    _c("visitDate", TS, "Deprecated by Listrak in 2020; expect null."),
    _c("externalContactID", T, "The contact's external ID."),
)
_SUMMARY = (
    _c("averageOrderValue", F, "Average value of attributed orders.", nullable=False),
    _c("bounceCount", INT, "Bounces.", nullable=False),
    _c("clickCount", INT, "Clicks.", nullable=False),
    _c("conversionCount", INT, "Orders attributed.", nullable=False),
    _c("openCount", INT, "Opens.", nullable=False),
    _c("passAlongCount", INT, "Forwards to a friend.", nullable=False),
    _c("readCount", INT, "Reads.", nullable=False),
    _c("revenue", F, "Revenue attributed.", nullable=False),
    _c("sentCount", INT, "Sends.", nullable=False),
    _c("unsubscribeCount", INT, "Unsubscribes.", nullable=False),
    _c("visitCount", INT, "Site visits driven by the message.", nullable=False),
)
_MSG = "/List/{listId}/Message/{messageId}"
_CONV = "/List/{listId}/Conversation/{conversationId}"


def _rest(name: str, description: str, route: str, model: str, key: tuple[str, ...], columns: tuple[Column, ...],
          path_keys: tuple[Column, ...], parent: str | None, **more: object) -> Stream:
    return Stream(name=name, description=description, operation=route, item_element=model,
                  request=RequestKind.REST, key=key, columns=columns, parent=parent,
                  parent_key=path_keys[-1] if path_keys else None, api="rest", route=route,
                  path_keys=path_keys, **more)  # type: ignore[arg-type]


REST_STREAMS: tuple[Stream, ...] = (
    _rest("rest_lists", "The account's lists, as the REST API lists them (a parent only).", "/List", "List",
          ("listId",), _LIST, (), None, stored=False, legacy_name="lists"),
    _rest("rest_messages", "A list's messages, test sends included (a parent only).", "/List/{listId}/Message",
          "Message", ("listId", "messageId"), _MESSAGE, (LIST_ID,), "rest_lists", stored=False, rest_paged=True,
          query=(("includeTestMessages", "true"),), cursor="sendDate", date_param="startDate",
          legacy_name="messages", legacy_key=("messageId",)),
    _rest("contacts", "Every contact of every list, subscribed and unsubscribed, with profile-field values.",
          "/List/{listId}/Contact", "Contact", ("listId", "emailAddress"), (
              EMAIL,
              _c("emailKey", T, "Listrak's own key for the contact."),
              _c("universalEmailKey", T, "SHA-256 of the address (as Listrak computes it)."),
              _c("subscriptionState", T, "Subscribed or Unsubscribed."),
              _c("subscribeDate", TS, "When the contact subscribed."),
              _c("resubscribeDate", TS, "When the contact last re-subscribed (null: never)."),
              _c("subscribeMethod", T, "How the contact subscribed (free text)."),
              _c("unsubscribeDate", TS, "When the contact unsubscribed (null while subscribed)."),
              _c("unsubscribeMethod", T, "How the contact unsubscribed (free text)."),
              _c("externalContactID", T, "The contact's ID in the customer's own systems."),
              _c("segmentationFieldValues", J,
                 "Profile-field values: [{segmentationFieldGroupId, segmentationFieldId, value}]."),
          ), (LIST_ID,), "rest_lists", rest_paged=True,
          passes=("subscriptionState", ("Subscribed", "Unsubscribed")), cursor="subscribeDate",
          date_param="startDate", legacy_name="contacts",
          values_from=("segmentation_fields", "segmentationFieldId", "segmentationFieldIds", 30)),
    _rest("campaigns", "Campaigns of each list.", "/List/{listId}/Campaign", "Campaign", ("listId", "campaignId"), (
        _c("campaignId", INT, "The campaign's ID.", nullable=False),
        _c("campaignName", T, "The campaign's name."),
    ), (LIST_ID,), "rest_lists", legacy_name="campaigns", legacy_key=("campaignId",)),
    _rest("conversations", "Automated journeys (welcome series, abandoned cart, ...) of each list.",
          "/List/{listId}/Conversation", "Conversation", ("listId", "conversationId"), (
              CONVERSATION_ID,
              _c("conversationName", T, "The conversation's name."),
              _c("campaignId", INT, "Its campaign (0: none).", nullable=False),
              _c("expirationDate", TS, "When it expires (null: never)."),
              _c("status", T, "Its status (free text)."),
          ), (LIST_ID,), "rest_lists", legacy_name="conversations", legacy_key=("conversationId",)),
    _rest("conversation_messages", "The messages of each conversation, earlier versions included, in full.",
          _CONV + "/Message", "MessageExtended", ("listId", "conversationId", "messageId"), _MESSAGE_EXTENDED,
          (LIST_ID, CONVERSATION_ID), "conversations", rest_paged=True,
          query=(("includePreviousVersions", "true"),), detail_route=_CONV + "/Message/{messageId}",
          legacy_name="conversation_messages", legacy_key=("messageId",)),
    _rest("conversation_message_activity", "One row per recipient and send of a conversation message.",
          _CONV + "/Message/{messageId}/Activity", "MessageActivity",
          ("listId", "conversationId", "messageId", "emailAddress", "sendDate"), _ACTIVITY,
          (LIST_ID, CONVERSATION_ID, MESSAGE_ID), "conversation_messages", rest_paged=True, event=True,
          cursor="activityDate", date_param="startDate", legacy_name="conversation_message_activity",
          legacy_key=()),
    _rest("conversation_message_summaries", "The service's totals per conversation message.",
          _CONV + "/Message/{messageId}/Summary", "MessageSummary", ("listId", "conversationId", "messageId"),
          _SUMMARY, (LIST_ID, CONVERSATION_ID, MESSAGE_ID), "conversation_messages"),
    _rest("transactional_messages", "Transactional message templates of each list.",
          "/List/{listId}/TransactionalMessage", "TransactionalMessage", ("listId", "transactionalMessageId"), (
              TRANSACTIONAL_ID,
              _c("transactionalMessageName", T, "The template's name."),
              _c("campaignId", INT, "Its campaign (0: none).", nullable=False),
              _c("externalCampaignId", T, "The customer's own campaign identifier."),
              _c("subject", T, "The subject line."),
          ), (LIST_ID,), "rest_lists", legacy_name="transactional_messages",
          legacy_key=("transactionalMessageId",)),
    _rest("transactional_message_activity", "One row per send of a transactional message.",
          "/List/{listId}/TransactionalMessage/{transactionalMessageId}/Activity", "TransactionalMessageActivity",
          ("listId", "transactionalMessageId", "emailAddress", "sendDate", "resendKey"),
          (*_ACTIVITY, _c("resendKey", T, "The send's key for a resend.")),
          (LIST_ID, TRANSACTIONAL_ID), "transactional_messages", rest_paged=True, event=True,
          cursor="sendDate", date_param="startDate", query=(("dateType", "Send"),)),
    _rest("message_activity", "One row per recipient of a list message: flags, first activity, clicks.",
          _MSG + "/Activity", "MessageActivity", ("listId", "messageId", "emailAddress"), _ACTIVITY,
          (LIST_ID, MESSAGE_ID), "rest_messages", rest_paged=True, event=True, cursor="activityDate",
          date_param="startDate", query=(("dateType", "Send"),), legacy_name="message_activity", legacy_key=()),
    _rest("message_links", "The links of each list message, with their click totals.", _MSG + "/Link", "MessageLink",
          ("listId", "messageId", "linkId"), (
              LINK_ID,
              _c("linkDescription", T, "The link's label."),
              _c("linkUrl", T, "The link's target."),
              _c("clickCount", INT, "Clicks on the link.", nullable=False),
          ), (LIST_ID, MESSAGE_ID), "rest_messages", rest_paged=True, legacy_name="message_links"),
    _rest("message_link_clickers", "One row per click on a link (a contact who clicks twice has two rows).",
          _MSG + "/Link/{linkId}/Clicker", "MessageLinkClicker",
          ("listId", "messageId", "linkId", "emailAddress", "clickDate"), (
              EMAIL,
              _c("clickDate", TS, "When the click happened."),
          ), (LIST_ID, MESSAGE_ID, LINK_ID), "message_links", rest_paged=True, event=True, cursor="clickDate",
          date_param="startDate", legacy_name="message_link_clickers"),
    _rest("message_summaries", "The service's totals per list message, with its subject and send date.",
          _MSG + "/Summary", "MessageSummary", ("listId", "messageId"), (*_MESSAGE[1:], *_SUMMARY),
          (LIST_ID, MESSAGE_ID), "rest_messages", from_parent=tuple(c.name for c in _MESSAGE[1:])),
    _rest("segmentation_field_groups", "Profile-field groups of each list.", "/List/{listId}/SegmentationFieldGroup",
          "SegmentationFieldGroup", ("listId", "segmentationFieldGroupId"), (
              GROUP_ID,
              _c("segmentationFieldGroupName", T, "The group's name."),
              _c("position", INT, "Display order of the group.", nullable=False),
          ), (LIST_ID,), "rest_lists"),
    _rest("segmentation_fields", "Profile fields of each group: name, type, length.",
          "/List/{listId}/SegmentationFieldGroup/{segmentationFieldGroupId}/SegmentationField", "SegmentationField",
          ("listId", "segmentationFieldGroupId", "segmentationFieldId"), (
              _c("segmentationFieldId", INT, "The field's ID.", nullable=False),
              _c("segmentationFieldName", T, "The field's name."),
              GROUP_ID,
              _c("dataType", T, "Text, Numeric, RadioButton, CheckBox, CommentArea, Date or ContentBlock."),
              _c("maxLength", INT, "Most characters stored.", nullable=False),
              _c("position", INT, "Display order within the group.", nullable=False),
          ), (LIST_ID, GROUP_ID), "segmentation_field_groups"),
)
