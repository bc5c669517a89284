from bson import ObjectId


def test_ingest_then_read(api, make_invoice, make_siret, platform):
    client = ObjectId()
    contractor = platform.contractor(client, make_siret("732829320"))
    platform.ticket(client, "T-1", contractor)
    answer = api.ingest(client, [make_invoice("A", supplier_siret=make_siret("732829320"), order_reference="T-1"),
                                 make_invoice("B")])
    print(answer)
    assert answer["created"] == 2
    page = api.public(client).get_json()
    print(page)
    again = api.ingest(client, [make_invoice("A", supplier_siret=make_siret("732829320"), order_reference="T-1")])
    print(again)
    assert again["unchanged"] == 1
