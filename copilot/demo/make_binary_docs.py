"""Generate the demo knowledge base's binary documents (PDF, DOCX, XLSX) into copilot/demo/kb/.

Run: .venv/bin/python copilot/demo/make_binary_docs.py
The output is deterministic apart from file timestamps; the generated files are committed.
Sidecar metadata (NAME.EXT.meta.yaml) is written next to each file.
"""

from __future__ import annotations

from pathlib import Path

import yaml

KB = Path(__file__).parent / "kb"

# A document is a list of blocks: ("h1"|"h2"|"h3"|"p", text), ("table", [[header...], [row...], ...]),
# ("pagebreak", None).


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
# Price policy 2025 / 2026: near-duplicates, the 2026 one supersedes the 2025 one.


def price_policy(year: int) -> list:
    new = year == 2026
    a_max, b_max, c_max = ("12%", "8%", "5%") if new else ("15%", "10%", "5%")
    a_zhe = "八八折" if new else "八五折"
    rep, mgr, director = ("5%", "8%", "12%") if new else ("5%", "10%", "15%")
    date = "2026-01-01" if new else "2025-01-01"
    blocks = [
        ("h1", f"云帆智能 {year} 年价格与折扣政策"),
        ("p", f"版本日期：{date}　发布部门：销售运营部、财务部　文件编号：YF-XS-{year}-001"),
        ("p", "本政策适用于云帆设备云各版本订阅、云帆硬件及实施服务的对外报价与折扣审批。"
         + ("本版本自 2026 年 1 月 1 日起生效，同时废止《云帆智能 2025 年价格与折扣政策》。" if new
            else "本版本自 2025 年 1 月 1 日起生效，有效期至新版本发布为止。")),
        ("h2", "1. 目录价"),
        ("p", "1.1 软件订阅：标准版 28,000 元/年起（含 100 点位），专业版 68,000 元/年起（含 300 点位），"
         "企业版 160,000 元/年起（含 1,000 点位）。" + ("" if new else "超出点位按各版本单价计费。")),
        ("p", "1.2 硬件：YF-G200 边缘网关 3,800 元/台，YF-S10 无线振动温度传感器 680 元/个，"
         "YF-T5 冷链温湿度记录仪 420 元/个，YF-E30 智能电能计量模块 1,250 元/个。"),
        ("p", "1.3 实施服务：标准实施 15,000 元起，驻场服务 2,500 元/人天。"),
        ("h2", "2. 折扣上限"),
        ("p", f"2.1 按客户等级的折扣上限：A类客户最高{a_max}，B类客户最高{b_max}，C类客户最高{c_max}。"
         f"也就是说，A类客户最低只能报到{a_zhe}。折扣以合同总额（不含实施服务）计算。"),
        ("p", f"2.2 审批权限：销售代表可直接批准 {rep} 以内的折扣；区域经理可批准 {mgr} 以内；"
         f"大区总监可批准 {director} 以内。超出客户等级上限的折扣一律不予批准。"),
        ("p", "2.3 多年合同：" + ("自 2026 年起，多年合同不再叠加额外折扣，改为赠送：三年合同赠送 20 人天实施服务，"
                                  "或首年免费升级一个版本（二选一）。" if new
                                  else "签订三年合同的，可在客户等级折扣基础上额外叠加 3%，由大区总监审批。")),
        ("pagebreak", None),
        ("h2", "3. 付款条件"),
        ("p", "3.1 标准付款：合同签订后预付 " + ("40%" if new else "30%")
         + "，硬件到货验收后付 " + ("40%" if new else "50%") + "，系统上线验收后付 20%。"),
        ("p", "3.2 分期付款：订阅费可按季度支付，" + ("需区域经理审批，季度付款价格上浮 3%。" if new
                                                    else "需区域经理审批，价格不上浮。")),
        ("p", "3.3 试点项目：试点不超过 30 个点位、周期不超过 60 天，试点订阅费按目录价的 50% 收取，试点转正式合同的可全额抵扣。"),
        ("h2", "4. 赠送与特殊支持"),
        ("p", "4.1 赠送（免费硬件、实施人天、培训）折算金额与折扣合计不得超过合同金额的 "
         + ("15%" if new else "18%") + "。"),
        ("p", "4.2 不得向客户口头承诺任何超出本政策的折扣、赠送或付款条件。未经审批的承诺由销售代表个人负责。"),
        ("h2", "5. 报价有效期与跨年报价"),
        ("p", "5.1 正式报价单有效期 30 天。"),
        ("p", "5.2 跨年报价：" + ("2025 年发出、2026 年签约的报价，须按本政策重新核价，不再执行 2025 年的折扣上限。" if new
                                 else "跨年签约的报价须按签约当年的价格政策重新核价。")),
        ("h2", "6. 附则"),
        ("p", "本政策由销售运营部负责解释。" + ("如与《云帆智能 2025 年价格与折扣政策》不一致，以本政策为准。" if new else "")),
    ]
    return blocks


def objection_handbook() -> list:
    return [
        ("h1", "异议处理手册"),
        ("p", "版本日期：2026-03-01　维护部门：销售赋能部"),
        ("p", "本手册汇总一线销售最常遇到的八类异议，每类给出判断要点、标准应答和下一步动作。价格异议的详细 TCO 算法见《价格异议与总拥有成本（TCO）话术》。"),
        ("h2", "1. 异议处理四步法"),
        ("p", "第一步倾听，不打断客户；第二步复述，确认异议的真实含义；第三步回应，用事实、案例和数字；第四步确认，问客户“这样解释您觉得可以吗”。"),
        ("p", "记住：异议是购买信号。客户愿意提异议，说明他在认真考虑。"),
        ("h2", "2. 预算类异议"),
        ("h3", "2.1 客户说今年预算紧"),
        ("p", "判断要点：是真的没预算，还是优先级不够？问一句：“如果预算不是问题，这个项目您会今年做吗？”"),
        ("p", "标准应答：提供分期付款或小范围试点，试点费用走运营费用。把试点效果作为客户明年申请预算的依据。"),
        ("h3", "2.2 预算已经批给别的项目"),
        ("p", "标准应答：帮客户算清楚停机损失或冷链损耗，让我们的项目在下一轮预算里排得上号。约定明年预算编制前再沟通一次，并在 CRM 建任务。"),
        ("h2", "3. 决策流程类异议"),
        ("h3", "3.1 决策链长、要集团审批"),
        ("p", "判断要点：画出决策链地图，标明每个人的态度（支持、中立、反对）和关注点。"),
        ("p", "标准应答：请支持者帮忙组织联合评审会；准备面向老板的一页纸 ROI；必要时请区域经理或售前专家出面拜访高层。商机在同一阶段停留超过 45 天的，按《客户跟进规则》升级。"),
        ("h2", "4. 交付与技术类异议"),
        ("h3", "4.1 担心交付周期长、影响生产"),
        ("p", "标准应答：标准硬件 10 个工作日发货，无线传感器安装不停线，大项目分批上线，首批 30 天内出数据。"),
        ("h3", "4.2 担心无线不稳定"),
        ("p", "标准应答：Sub-GHz 组网穿透金属车间，恒锐精密压铸车间实测稳定率 99.5% 以上，可安排参观。"),
        ("h2", "5. 售后服务类异议"),
        ("p", "标准应答：7×24 小时热线，2 小时响应，中心城市 24 小时到场，硬件原厂质保两年，备件 48 小时寄达。"),
        ("pagebreak", None),
        ("h2", "6. 异议速查表"),
        ("table", [["异议类型", "客户原话示例", "应答要点", "配套材料"],
                   ["价格", "太贵了，别家便宜两成", "澄清对比对象，算三年 TCO", "TCO 计算器"],
                   ["预算", "今年预算用完了", "分期付款或试点，走运营费用", "试点申请表"],
                   ["折扣", "打个八折吧", "按政策申请，不口头承诺", "2026 价格政策"],
                   ["决策流程", "要集团采购评审", "联合评审会，一页纸 ROI", "决策链地图"],
                   ["竞品", "智云/海拓更便宜", "用攻防卡，比三年总成本", "竞品攻防卡"],
                   ["交付", "要多久能装完", "10 个工作日发货，分批上线", "交付标准"],
                   ["服务", "坏了没人管", "2 小时响应，48 小时备件", "交付标准"]]),
    ]


def case_manufacturing() -> list:
    return [
        ("h1", "客户案例：恒锐精密压铸车间预测性维护"),
        ("p", "版本日期：2026-04-20　行业：制造业（汽车零部件压铸）"),
        ("h2", "1. 客户背景"),
        ("p", "恒锐精密是长三角一家汽车零部件压铸企业，给三家主机厂供货，拥有压铸机 48 台、CNC 加工中心 160 台、空压站 2 座，年产值约 9 亿元。"),
        ("h2", "2. 面临的挑战"),
        ("p", "2.1 非计划停机频繁：2024 年非计划停机 31 次，其中空压机和压铸机液压泵故障占六成，单次平均损失约 12 万元。"),
        ("p", "2.2 主机厂交付考核：主机厂对准时交付率考核严格，一次断供罚款可达 50 万元。"),
        ("h2", "3. 解决方案"),
        ("p", "部署 YF-S10 无线振动温度传感器 620 个、YF-G200 边缘网关 14 台，使用云帆设备云专业版和预测性维护模块，预警自动生成工单推送到设备部企业微信。"),
        ("p", "项目分三批上线，每批 3 周，安装全程不停线。压铸车间金属密集，实测无线组网稳定率 99.5% 以上。"),
        ("h2", "4. 实施效果"),
        ("table", [["指标", "上线前（2024 年）", "上线后（2025 年）", "变化"],
                   ["非计划停机次数", "31 次", "19 次", "减少 37%"],
                   ["停机损失", "约 372 万元", "约 228 万元", "节省约 144 万元"],
                   ["轴承类备件库存", "86 万元", "68 万元", "下降 21%"],
                   ["点检人力", "9 人", "5 人", "节省 4 人"]]),
        ("p", "项目总投资（首年订阅+硬件+实施）约 62 万元，投资回收期约 5 个月。"),
        ("h2", "5. 客户评价与销售要点"),
        ("p", "设备部部长：“以前是坏了再修，现在系统提前两三天告诉我们哪台泵要出问题，排产也能提前调整。”"),
        ("p", "销售要点：面对制造业客户，用停机次数和单次停机损失算账；客户担心无线不稳定时，邀请参观恒锐精密压铸车间。"),
    ]


def battlecard_haituo() -> list:
    return [
        ("h1", "竞品攻防卡：海拓物联"),
        ("p", "版本日期：2026-02-15　密级：内部资料，禁止外发给客户"),
        ("h2", "1. 竞品概况"),
        ("p", "海拓物联（杭州）成立于 2012 年，传统工业自动化和有线传感器厂商，以项目制一次性买断为主，软件每年另收维护费（一般为合同额的 12% 到 15%）。在大型制造业客户中有较多存量。"),
        ("h2", "2. 他们的优势"),
        ("p", "2.1 品牌老、行业积累深，与自动化集成商关系好。"),
        ("p", "2.2 一次买断模式对不喜欢年费的老板有吸引力，小型工厂首付价格低。"),
        ("h2", "3. 他们的弱点"),
        ("p", "3.1 有线方案需要布线，安装要停线，200 台设备一般需要 6 到 8 周，实际常有延期。"),
        ("p", "3.2 软件版本更新慢，预测性维护需要另购专家服务，按次收费。"),
        ("p", "3.3 售后依赖集成商，响应时间不统一。"),
        ("h2", "4. 应对话术"),
        ("p", "场景标签：竞品比较。“海拓是老牌厂商，有线方案稳定，这点我们认可。不过您要考虑两点：一是布线安装要停线，停线的损失要算进去；二是买断之后每年还有 12% 到 15% 的维护费，而且预测性维护要另外买服务。三年算下来，我们的总成本不比它高。”"),
        ("p", "场景标签：交付周期。客户说海拓六周能装完时：“六周是指布线完成，不含调试。我们无线传感器不用停线，200 台设备分两批，首批 30 天内出数据。”"),
        ("h2", "5. 对比表"),
        ("table", [["对比项", "云帆智能", "海拓物联"],
                   ["安装方式", "无线，单台约 20 分钟，不停线", "有线布线，需停线"],
                   ["收费模式", "年度订阅，持续升级", "一次买断 + 年维护费 12%–15%"],
                   ["预测性维护", "专业版内置", "另购专家服务"],
                   ["售后响应", "2 小时响应，原厂服务", "依赖集成商"]]),
        ("h2", "6. 赢单与输单参考"),
        ("p", "输单：明辉五金（制造业，2026 年 7 月），小型工厂老板只接受一次买断。教训：对 C 类小客户，可提前报标准版三年总价，避免只比首年价格。"),
    ]


def contract_terms() -> list:
    return [
        ("h1", "合同与付款条件说明"),
        ("p", "版本日期：2026-01-05　发布部门：法务部、财务部"),
        ("h2", "1. 合同类型"),
        ("p", "1.1 订阅合同：适用于云帆设备云各版本订阅，合同期一年或三年，到期前 90 天提醒续约。"),
        ("p", "1.2 硬件销售合同：硬件所有权在客户付清硬件款后转移。试点借用硬件所有权不转移。"),
        ("p", "1.3 框架协议：集团客户可签框架协议，约定单价和折扣上限，各子公司按订单执行。"),
        ("h2", "2. 付款与发票"),
        ("p", "2.1 付款节点按当年《价格与折扣政策》执行，合同中不得约定验收后超过 90 天的账期。"),
        ("p", "2.2 软件订阅与硬件开具 13% 增值税专用发票，实施服务开具 6% 专用发票。"),
        ("h2", "3. 常见合同条款问答"),
        ("table", [["客户要求", "是否可以接受", "处理方式"],
                   ["三年免费维保", "部分接受", "硬件原厂质保两年为标准，第三年延保按硬件原价 8% 报价，可作为赠送项但计入赠送额度"],
                   ["数据归属客户", "接受", "使用标准数据条款：数据所有权归客户，云帆仅为提供服务处理数据"],
                   ["源代码托管", "不接受", "可提供私有化部署版本和 API 文档"],
                   ["违约金超过合同额 20%", "不接受", "标准条款为 10%，最高可谈到 15%，需法务审批"]]),
        ("h2", "4. 审批流程"),
        ("p", "非标准条款须在 CRM 中提交合同评审，法务 2 个工作日内答复。涉及折扣的按价格政策审批权限执行。"),
    ]


def industry_talk_tracks() -> dict[str, list[list[str]]]:
    header = ["场景标签", "客户问题", "标准应答话术", "适用行业", "配套工具"]
    return {
        "制造业": [header,
            ["需求挖掘", "我们有点检制度，用不着监测系统吧？", "点检是按周期看，故障是随时发生的。很多工厂点检完第二天设备就坏了。传感器 24 小时盯着，点检人员可以把时间花在真正有问题的设备上。", "制造业", "恒锐精密案例"],
            ["价格异议", "一个传感器 680 块，太贵了。", "一个传感器一年折合不到 230 元，一次轴承抱死导致的停线就要损失好几万。我们按关键设备装，不是每台都装，先把最怕停的设备保护起来。", "制造业", "三年 TCO 计算器.xlsx"],
            ["竞品比较", "海拓物联是老牌子，你们靠谱吗？", "海拓在有线传感器领域确实做得早。我们在恒锐精密、锦程汽配这样的压铸、冲压车间都有稳定运行一年以上的案例，可以安排您去现场看。", "制造业", "《竞品攻防卡：海拓物联》"],
            ["决策链长", "这个要分管副总和集团采购一起定。", "没问题，我们准备两份材料：给副总的是停机损失和 ROI，给采购的是三年 TCO 和同类项目的价格参考，两边的问题一次说清楚。", "制造业", "一页纸 ROI 模板"]],
        "零售连锁": [header,
            ["需求挖掘", "门店冷柜坏了店员会报修的。", "店员报修一般是第二天开门才发现，整柜商品已经坏了。我们夜间温度超限直接打电话给值班店长，优选家一年因此少报损 11 次以上。", "零售连锁", "优选家案例"],
            ["预算紧", "今年预算没了，明年再说。", "可以先挑 20 家损耗最高的门店试点 60 天，试点费用很低，走运营费用就行。明年做预算时，您手上就有自己门店的数据。", "零售连锁", "试点申请表"],
            ["竞品比较", "智云说可以免费试点三个月。", "免费试点要看清楚两件事：试点结束后的价格，和试点硬件要不要买断。我们的试点条件和转正价格提前写进试点协议，没有后手。", "零售连锁", "《竞品攻防卡：智云科技》"]],
        "物流": [header,
            ["需求挖掘", "车上已经有温度计了。", "温度计能看，但在途超温时没人看得到。我们的记录仪超限实时报警，收货方还能扫码看全程温度曲线，客户投诉和索赔会少很多。", "物流", "南粤冷链案例"],
            ["交付周期", "车辆不能停运，怎么装？", "记录仪安装 15 分钟一辆，可以利用车辆回场的时间装。南粤冷链 320 辆车分 3 批装完，没有影响运营。", "物流", "《交付周期与售后服务标准》"]],
        "医疗健康": [header,
            ["需求挖掘", "我们用 U 盘导数据也能过检查。", "U 盘导出最怕漏导和断档。康华医药之前就因为 3 天记录缺失被要求整改。我们的记录自动上传、带数字签名，飞检时一键导出。", "医疗健康", "康华医药案例"],
            ["价格异议", "记录仪淘宝上一百多块一个。", "便宜的记录仪只能记，不能实时报警，也没有不可篡改的签名，GSP 检查不认可。算上一次整改和冷链药品报损的成本，差价很快就回来了。", "医疗健康", "三年 TCO 计算器.xlsx"]],
    }


def main() -> None:
    docs = [
        ("policies/price_policy_2025.pdf", "pdf", price_policy(2025),
         {"title": "云帆智能 2025 年价格与折扣政策", "date": "2025-01-01", "type": "policy", "product": "云帆设备云", "visibility": "all"}),
        ("policies/price_policy_2026.pdf", "pdf", price_policy(2026),
         {"title": "云帆智能 2026 年价格与折扣政策", "date": "2026-01-01", "type": "policy", "product": "云帆设备云", "visibility": "all",
          "supersedes": "policies/price_policy_2025.pdf"}),
        ("objections/objection_handbook.docx", "docx", objection_handbook(),
         {"title": "异议处理手册", "date": "2026-03-01", "type": "objection", "visibility": "all"}),
        ("cases/case_manufacturing_hengrui.docx", "docx", case_manufacturing(),
         {"title": "客户案例：恒锐精密压铸车间预测性维护", "date": "2026-04-20", "type": "case", "industry": "制造业",
          "product": "预测性维护模块", "visibility": "all"}),
        ("battlecards/battlecard_haituo.docx", "docx", battlecard_haituo(),
         {"title": "竞品攻防卡：海拓物联", "date": "2026-02-15", "type": "battlecard", "visibility": "all"}),
        ("policies/contract_payment_terms.docx", "docx", contract_terms(),
         {"title": "合同与付款条件说明", "date": "2026-01-05", "type": "policy", "visibility": "all"}),
    ]
    for rel, kind, blocks, meta in docs:
        path = KB / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        (write_pdf if kind == "pdf" else write_docx)(path, blocks, meta["title"])
        write_meta(path, meta)
        print(f"{rel}: {path.stat().st_size} bytes")
    path = KB / "talk_tracks/industry_talk_tracks.xlsx"
    write_xlsx(path, industry_talk_tracks(), "分行业销售话术表")
    write_meta(path, {"title": "分行业销售话术表", "date": "2026-03-01", "type": "talk_track", "visibility": "all"})
    print(f"talk_tracks/industry_talk_tracks.xlsx: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
