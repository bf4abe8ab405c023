"""Generate the binary documents (PDF, DOCX, XLSX) of the retrieval eval set `evals/datasets/kb_docs/`.

Fictional company: 薪云科技, an HR / payroll SaaS (人事、考勤、薪酬、社保代缴) sold to 制造业, 零售连锁, 餐饮 and 互联网.
Run: .venv/bin/python evals/datasets/kb_docs/make_binary_docs.py   (writes the files and their .meta.yaml sidecars)
Queries for this set: evals/datasets/kb_docs_queries.jsonl.
"""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1] / "kb_docs"

# A document is a list of blocks: ("h1"|"h2"|"h3"|"p", text), ("table", [[header...], [row...]]), ("pagebreak", None).


def write_pdf(path: Path, blocks: list, title: str) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    base = {"fontName": "STSong-Light", "wordWrap": "CJK"}
    styles = {
        "h1": ParagraphStyle("h1", fontSize=18, leading=26, spaceAfter=10, **base),
        "h2": ParagraphStyle("h2", fontSize=14, leading=20, spaceBefore=8, spaceAfter=6, **base),
        "h3": ParagraphStyle("h3", fontSize=12, leading=18, spaceBefore=6, spaceAfter=4, **base),
        "p": ParagraphStyle("p", fontSize=10.5, leading=17, spaceAfter=6, **base),
        "cell": ParagraphStyle("cell", fontSize=9.5, leading=14, **base),
    }
    story = []
    for kind, value in blocks:
        if kind == "pagebreak":
            story.append(PageBreak())
        elif kind == "table":
            data = [[Paragraph(str(c), styles["cell"]) for c in row] for row in value]
            table = Table(data, repeatRows=1)
            table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.5, "#888888"), ("VALIGN", (0, 0), (-1, -1), "TOP")]))
            story += [table, Spacer(1, 4 * mm)]
        else:
            story.append(Paragraph(value, styles[kind]))
    doc = SimpleDocTemplate(str(path), pagesize=A4, title=title, author="云帆智能",
                            leftMargin=20 * mm, rightMargin=20 * mm, topMargin=20 * mm, bottomMargin=20 * mm)
    doc.build(story)


def write_docx(path: Path, blocks: list, title: str) -> None:
    import docx

    document = docx.Document()
    document.core_properties.title = title
    document.core_properties.author = "云帆智能"
    for kind, value in blocks:
        if kind == "pagebreak":
            document.add_page_break()
        elif kind == "table":
            table = document.add_table(rows=0, cols=len(value[0]))
            table.style = "Table Grid"
            for row in value:
                cells = table.add_row().cells
                for cell, text in zip(cells, row, strict=True):
                    cell.text = str(text)
        elif kind in ("h1", "h2", "h3"):
            document.add_heading(value, level=int(kind[1]))
        else:
            document.add_paragraph(value)
    document.save(str(path))


def write_xlsx(path: Path, sheets: dict[str, list[list[str]]], title: str) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    wb = Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for row in rows:
            ws.append(row)
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for col, width in zip("ABCDE", (12, 30, 60, 12, 24), strict=False):
            ws.column_dimensions[col].width = width
        for row in ws.iter_rows(min_row=2):
            for cell in row:
                cell.alignment = Alignment(wrap_text=True, vertical="top")
    wb.properties.title = title
    wb.properties.creator = "云帆智能"
    wb.save(str(path))


def write_meta(path: Path, meta: dict) -> None:
    side = path.with_name(path.name + ".meta.yaml")
    side.write_text(yaml.safe_dump(meta, allow_unicode=True, sort_keys=False), encoding="utf-8")


# ---------------------------------------------------------------------------------------------


def pricing_policy(year: int) -> list:
    new = year == 2026
    big, mid, small = ("15%", "10%", "5%") if new else ("20%", "12%", "5%")
    return [
        ("h1", f"薪云科技 {year} 年报价与折扣政策"),
        ("p", f"版本日期：{year}-01-01　发布：销售运营部　编号：XY-PRICE-{year}"),
        ("p", "本政策适用于薪云 HR SaaS 全部版本的订阅报价、硬件报价和实施服务报价。"
         + ("自 2026 年 1 月 1 日起执行，《薪云科技 2025 年报价与折扣政策》同时废止。" if new else "自 2025 年 1 月 1 日起执行。")),
        ("h2", "1. 订阅目录价"),
        ("p", "1.1 基础版（人事+考勤）每人每月 8 元；专业版（增加薪酬、绩效）每人每月 15 元；旗舰版（增加社保管理、开放接口、专属客户成功经理）每人每月 25 元。"),
        ("p", "1.2 最低起订 100 人，按年预付。" + ("2026 年起支持按季度付款，季度付款价格上浮 5%。" if new else "不支持按季度付款。")),
        ("p", "1.3 硬件：XY-K3 人脸考勤机每台 1,980 元；XY-K5 人脸门禁考勤一体机每台 3,200 元。"),
        ("h2", "2. 折扣上限"),
        ("p", f"2.1 按客户规模的折扣上限：大客户（1000 人以上）最高{big}，中型客户（300 至 999 人）最高{mid}，小型客户（300 人以下）最高{small}。"),
        ("p", "2.2 审批权限：销售代表 5% 以内自批；销售经理 " + ("10%" if new else "12%") + " 以内；超过的由销售总监审批，且不得超过客户规模对应的上限。"),
        ("p", "2.3 多年合同：" + ("2026 年起多年合同不再叠加折扣，改为三年合同赠送 2 个月订阅服务。" if new
                                 else "两年及以上合同可在规模折扣基础上额外叠加 5%。")),
        ("pagebreak", None),
        ("h2", "3. 实施服务"),
        ("p", "3.1 标准实施费 20,000 元起（500 人以内），500 人以上每增加 500 人加收 8,000 元。"),
        ("p", "3.2 实施费" + ("不参与折扣，可以作为赠送项，赠送金额计入总优惠额度。" if new else "可参与折扣。")),
        ("h2", "4. 总优惠额度"),
        ("p", "4.1 折扣与赠送合计不得超过合同金额的 " + ("18%" if new else "25%") + "。"),
        ("p", "4.2 严禁口头承诺政策以外的折扣、返点或免费期。"),
        ("h2", "5. 报价有效期"),
        ("p", "5.1 报价单有效期 " + ("30 天" if new else "45 天") + "，跨年签约须按签约年度的政策重新核价。"),
    ]


def social_insurance_product() -> list:
    return [
        ("h1", "薪云社保代缴服务说明"),
        ("p", "版本日期：2026-02-20　产品线：薪云社保"),
        ("h2", "1. 服务内容"),
        ("p", "1.1 薪云社保为客户提供全国 300 多个城市的社保、公积金代缴和增减员办理，适合异地有员工但没有设立分公司的企业。"),
        ("p", "1.2 服务费每人每月 45 元，旗舰版客户每人每月 35 元。社保和公积金本身的费用按当地标准实报实销。"),
        ("h2", "2. 办理时效"),
        ("p", "2.1 每月 15 日前提交的增员，当月生效；15 日后提交的，次月生效。"),
        ("p", "2.2 减员须在每月 20 日前提交，逾期将多缴一个月，多缴部分由客户承担。"),
        ("pagebreak", None),
        ("h2", "3. 合规说明"),
        ("p", "3.1 代缴服务由薪云科技的人力资源服务子公司提供，持有人力资源服务许可证，签订三方委托协议。"),
        ("p", "3.2 员工个人信息仅用于办理社保，按照个人信息保护法要求单独取得员工同意。"),
        ("h2", "4. 常见问题"),
        ("p", "4.1 员工离职后社保怎么停？在系统里做减员即可，系统自动推送到代缴城市的办理专员。"),
        ("p", "4.2 可以补缴以前的社保吗？部分城市支持补缴，最长 3 个月，需提供劳动合同和工资流水。"),
    ]


def case_manufacturing() -> list:
    return [
        ("h1", "客户案例：华盛电子厂 5000 人三班倒考勤与计件薪酬"),
        ("p", "版本日期：2026-03-18　行业：制造业"),
        ("h2", "1. 客户背景"),
        ("p", "华盛电子是珠三角一家消费电子代工厂，员工约 5,200 人，其中普工占 85%，实行三班倒，工资按计件加加班费计算。"),
        ("h2", "2. 痛点"),
        ("p", "2.1 每月算薪要 6 个人做 5 天，计件数据从 MES 导出后手工核对，错误率约 2%，每月都有员工投诉工资算错。"),
        ("p", "2.2 旺季招工多、流失快，入离职手续积压，社保增减员经常漏办。"),
        ("pagebreak", None),
        ("h2", "3. 方案"),
        ("p", "部署 XY-K5 人脸门禁考勤一体机 36 台，使用薪云专业版，计件数据通过接口从 MES 每日同步，排班支持三班倒和调班审批。"),
        ("h2", "4. 效果"),
        ("p", "4.1 算薪时间从 5 天缩短到 1 天，算薪人员从 6 人减少到 2 人，工资差错投诉下降 90%。"),
        ("p", "4.2 入职办理从半天缩短到 15 分钟，员工扫码自助填写信息、签电子劳动合同。"),
        ("p", "4.3 项目年费约 93.6 万元，节省人工和差错成本每年约 140 万元，投资回收期约 8 个月。"),
    ]


def partner_commission() -> list:
    return [
        ("h1", "渠道合作伙伴佣金政策（2026）"),
        ("p", "版本日期：2026-01-15　发布：渠道部"),
        ("h2", "1. 合作伙伴等级"),
        ("p", "1.1 合作伙伴分为金牌、银牌、注册三个等级，按上一年度带来的新签合同额评定：金牌 300 万元以上，银牌 100 万元以上。"),
        ("h2", "2. 佣金比例"),
        ("table", [["伙伴等级", "新签佣金", "续约佣金"], ["金牌", "25%", "10%"], ["银牌", "20%", "8%"], ["注册", "15%", "5%"]]),
        ("p", "2.1 佣金按客户实际回款计算，回款后次月 10 日前结算。"),
        ("h2", "3. 撞单规则"),
        ("p", "3.1 同一客户由合作伙伴和直销同时跟进时，以 CRM 中先报备且 90 天内有有效跟进记录的一方为准。"),
        ("p", "3.2 报备有效期 90 天，期满未签约且无跟进记录的，报备自动失效。"),
    ]


def contract_guide() -> list:
    return [
        ("h1", "合同签订操作指引"),
        ("p", "版本日期：2026-02-01　发布：法务部"),
        ("h2", "1. 合同模板"),
        ("p", "1.1 标准订阅合同、数据处理协议（DPA）和硬件购销合同三份模板在法务共享盘，销售不得修改模板正文。"),
        ("p", "1.2 客户要求修改条款的，在 CRM 提交合同评审，法务 2 个工作日内回复。"),
        ("h2", "2. 常见条款"),
        ("table", [["客户要求", "能否接受", "处理建议"],
                   ["数据存放在客户自己的服务器", "可以", "报私有化部署方案，起价 30 万元"],
                   ["违约金 30%", "不接受", "标准条款 10%，最高谈到 15%"],
                   ["先用后付，上线后 90 天付款", "不接受", "最长上线后 30 天付款，需财务审批"],
                   ["免费试用 3 个月", "不接受", "标准试用 14 天，最长 30 天，需经理审批"]]),
        ("h2", "3. 盖章与归档"),
        ("p", "3.1 合同双方盖章后 3 个工作日内上传 CRM，上传后商机才能改为赢单。"),
    ]


def implementation(industry: str) -> list:
    if industry == "制造业":
        return [
            ("h1", "实施方案模板：制造业"),
            ("p", "版本日期：2026-04-01　适用行业：制造业（电子、机械、汽配、纺织）"),
            ("h2", "1. 实施周期"),
            ("p", "1.1 制造业客户标准实施周期 6 周：第 1 周调研，第 2 至 3 周配置排班和计件规则，第 4 周考勤机安装，第 5 周并行算薪，第 6 周上线。"),
            ("p", "1.2 员工 3000 人以上的工厂建议分厂区上线，每个厂区 4 周。"),
            ("h2", "2. 重点配置"),
            ("p", "2.1 三班倒排班：支持早中夜班、跨零点班次、调班审批，夜班补贴自动计算。"),
            ("p", "2.2 计件工资：从 MES 或 Excel 导入计件数据，按工序单价自动计算，支持返工扣减。"),
            ("pagebreak", None),
            ("h2", "3. 考勤设备"),
            ("p", "3.1 车间入口建议每 150 人配 1 台 XY-K5 人脸门禁考勤一体机，高峰期识别速度 1 秒/人。"),
            ("h2", "4. 风险与对策"),
            ("p", "4.1 并行算薪至少一个月，新旧结果差异超过 0.5% 的必须逐项核对后才能切换。"),
        ]
    return [
        ("h1", "实施方案模板：零售连锁"),
        ("p", "版本日期：2026-04-01　适用行业：零售连锁（超市、便利店、服装、药房）"),
        ("h2", "1. 实施周期"),
        ("p", "1.1 零售连锁客户标准实施周期 4 周：第 1 周调研门店组织架构，第 2 周配置排班和工时规则，第 3 周试点 10 家门店，第 4 周全部门店上线。"),
        ("p", "1.2 门店 200 家以上的客户建议按区域分批上线，每批 2 周。"),
        ("h2", "2. 重点配置"),
        ("p", "2.1 门店排班：按客流预测自动生成排班，支持小时工、兼职和跨店支援。"),
        ("p", "2.2 综合工时制：按月或按季度核算工时，超时自动提醒店长，避免违规加班。"),
        ("pagebreak", None),
        ("h2", "3. 考勤设备"),
        ("p", "3.1 门店员工较少，建议每店 1 台 XY-K3 人脸考勤机，或使用手机定位打卡，不强制装设备。"),
        ("h2", "4. 风险与对策"),
        ("p", "4.1 门店店长是关键用户，上线前必须完成店长培训，培训通过率低于 90% 的区域暂缓上线。"),
    ]


def battlecard_yixinbao() -> list:
    return [
        ("h1", "竞品攻防卡：易薪宝"),
        ("p", "版本日期：2026-02-10　内部资料"),
        ("h2", "1. 竞品概况"),
        ("p", "易薪宝是一款面向中小企业的算薪工具，主打低价，每人每月 5 元起，客户以 300 人以下的小微企业为主。"),
        ("h2", "2. 易薪宝的弱点"),
        ("p", "2.1 不支持计件工资和三班倒排班，制造业客户需要大量手工处理。"),
        ("p", "2.2 没有自有考勤硬件，需要对接第三方考勤机，数据经常对不上。"),
        ("p", "2.3 不提供社保代缴服务，异地员工要客户自己找代理。"),
        ("h2", "3. 应对话术"),
        ("p", "场景标签：竞品比较。“易薪宝做小企业算薪确实便宜。咱们一千多人、还有计件和三班倒，建议您拿一个月的真实数据让两家都跑一遍，看哪家不用手工改。”"),
        ("h2", "4. 对比表"),
        ("table", [["对比项", "薪云", "易薪宝"], ["计件工资", "支持，按工序单价", "不支持"],
                   ["考勤硬件", "自有 XY-K3/K5", "对接第三方"], ["社保代缴", "300+ 城市", "无"], ["价格", "8–25 元/人/月", "5 元/人/月起"]]),
    ]


def talk_tracks_industry() -> dict:
    header = ["场景标签", "客户问题", "标准应答话术", "适用行业", "配套工具"]
    return {
        "制造业": [header,
            ["需求挖掘", "我们用 Excel 算工资也挺好的。", "Excel 能算，但计件数据一多就容易出错。您现在每月算薪要几个人、几天？工资算错员工投诉多不多？", "制造业", "华盛电子案例"],
            ["价格异议", "几千人每人每月 15 块，一年要好几十万。", "我们按人头收费，但替您省的是算薪人员和差错赔付。华盛电子 5000 人，一年省下约 140 万元，8 个月就回本。", "制造业", "ROI 计算表"],
            ["交付周期", "多久能上线？年底算年终奖前能用吗？", "制造业标准实施 6 周，其中并行算薪一个月。如果要赶年终奖，建议 10 月底前启动。", "制造业", "实施方案模板：制造业"]],
        "零售连锁": [header,
            ["需求挖掘", "门店排班店长自己排就行。", "店长排班靠经验，客流高峰人不够、低谷人又多。我们按客流预测自动排班，一般能把门店人工成本降 5% 到 8%。", "零售连锁", "乐购汇案例"],
            ["预算紧", "今年人力预算已经超了。", "正因为人力预算超了，更要把排班和工时管起来。可以先拿 10 家门店试点一个月，看看能省多少工时。", "零售连锁", "试点申请表"]],
        "餐饮": [header,
            ["需求挖掘", "我们兼职多，流动快，系统管不过来。", "兼职和小时工正是我们的强项：扫码入职、按小时计薪、支持日结，离职当天就能结清。", "餐饮", "实施要点：餐饮"],
            ["竞品比较", "人和云也能做排班。", "人和云排班做得不错，但它不支持日结工资，兼职多的餐饮门店用起来要绕路。", "餐饮", "竞品攻防卡：人和云"]],
        "互联网": [header,
            ["需求挖掘", "我们人不多，要这么复杂的系统吗？", "互联网公司人不多但变化快，绩效、期权和远程办公考勤都要管。我们专业版开箱即用，两周就能上线。", "互联网", "星河互动案例"]],
    }


def main() -> None:
    docs = [
        ("policies/pricing_policy_2025.pdf", "pdf", pricing_policy(2025),
         {"title": "薪云科技 2025 年报价与折扣政策", "date": "2025-01-01", "type": "policy", "visibility": "all"}),
        ("policies/pricing_policy_2026.pdf", "pdf", pricing_policy(2026),
         {"title": "薪云科技 2026 年报价与折扣政策", "date": "2026-01-01", "type": "policy", "visibility": "all",
          "supersedes": "policies/pricing_policy_2025.pdf"}),
        ("products/social_insurance_service.pdf", "pdf", social_insurance_product(),
         {"title": "薪云社保代缴服务说明", "date": "2026-02-20", "type": "product", "product": "薪云社保", "visibility": "all"}),
        ("cases/case_manufacturing_huasheng.pdf", "pdf", case_manufacturing(),
         {"title": "客户案例：华盛电子厂 5000 人三班倒考勤与计件薪酬", "date": "2026-03-18", "type": "case", "industry": "制造业", "visibility": "all"}),
        ("policies/partner_commission_2026.docx", "docx", partner_commission(),
         {"title": "渠道合作伙伴佣金政策（2026）", "date": "2026-01-15", "type": "policy", "visibility": "all"}),
        ("policies/contract_guide.docx", "docx", contract_guide(),
         {"title": "合同签订操作指引", "date": "2026-02-01", "type": "policy", "visibility": "all"}),
        ("implementation/implementation_manufacturing.docx", "docx", implementation("制造业"),
         {"title": "实施方案模板：制造业", "date": "2026-04-01", "type": "product", "industry": "制造业", "visibility": "all"}),
        ("implementation/implementation_retail.docx", "docx", implementation("零售连锁"),
         {"title": "实施方案模板：零售连锁", "date": "2026-04-01", "type": "product", "industry": "零售连锁", "visibility": "all"}),
        ("battlecards/battlecard_yixinbao.docx", "docx", battlecard_yixinbao(),
         {"title": "竞品攻防卡：易薪宝", "date": "2026-02-10", "type": "battlecard", "visibility": "all"}),
    ]
    for rel, kind, blocks, meta in docs:
        path = ROOT / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        (write_pdf if kind == "pdf" else write_docx)(path, blocks, meta["title"])
        write_meta(path, meta)
        print(f"{rel}: {path.stat().st_size} bytes")
    path = ROOT / "talk_tracks/talk_tracks_industry.xlsx"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_xlsx(path, talk_tracks_industry(), "分行业话术表")
    write_meta(path, {"title": "分行业话术表", "date": "2026-03-01", "type": "talk_track", "visibility": "all"})
    print(f"talk_tracks/talk_tracks_industry.xlsx: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
